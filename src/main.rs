use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before any thread exists: it sets environment variables.
    hawser::source::lazy_ca_lookup();
    hawser::cli::run(hawser::cli::Cli::parse())
}
