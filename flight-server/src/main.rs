//! The `runnel` command-line tool.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("version") => println!("runnel {}", env!("CARGO_PKG_VERSION")),
        _ => {
            eprintln!(
                "runnel {}: the SQL front end and the Flight SQL server are not built yet.\n\
                 Run the engine demo with: cargo run --release -p runnel-engine --example iot",
                env!("CARGO_PKG_VERSION")
            );
            std::process::exit(2);
        }
    }
}
