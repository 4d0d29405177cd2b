//! The `runnel` binary; see [`runnel_flight::cli`].

fn main() -> std::process::ExitCode {
    runnel_flight::cli::main(std::env::args().skip(1).collect())
}
