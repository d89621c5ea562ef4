//! The `slipway` binary: parses arguments and hands off to the library
//! crates. No logic of its own lives here.

mod args;
mod commands;
mod human;
mod progress;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
