//! The `slipway` binary: parses arguments and hands off to the library
//! crates. No logic of its own lives here.

mod args;
mod commands;
mod human;
mod iso;
mod progress;
mod sigpipe;

use clap::Parser;

fn main() {
    sigpipe::reset();
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
