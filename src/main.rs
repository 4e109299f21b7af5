use clap::Parser;

fn main() -> std::process::ExitCode {
    hawser::cli::run(hawser::cli::Cli::parse())
}
