//! The `runnel` binary; see [`runnel_flight::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The work runs on a thread with a known, large stack rather than on
    // the main thread, whose size the platform picks.
    let worker = std::thread::Builder::new()
        .name("runnel-main".into())
        .stack_size(runnel_flight::STATEMENT_STACK_BYTES)
        .spawn(move || runnel_flight::cli::main(args));
    match worker.map(|t| t.join()) {
        Ok(Ok(code)) => code,
        Ok(Err(_)) => {
            eprintln!("runnel: internal error (the main thread panicked)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("runnel: cannot start the main thread: {e}");
            ExitCode::FAILURE
        }
    }
}
