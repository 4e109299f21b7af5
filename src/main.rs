use clap::Parser;

fn main() -> std::process::ExitCode {
    // A container's monitor (native target): before anything else, as it forks.
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "__monitor") {
        let dir = args.next().map(std::path::PathBuf::from).unwrap_or_default();
        hawser::runtime::native::monitor::main(dir);
    }
    // Before any thread exists: it sets environment variables.
    hawser::source::lazy_ca_lookup();
    hawser::cli::run(hawser::cli::Cli::parse())
}
