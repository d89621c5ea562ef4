//! The `slipway` binary: parses arguments and hands off to the library
//! crates. No logic of its own lives here.

mod args;
mod commands;
mod human;
mod iso;
mod progress;
mod server;
mod servicing;
mod sigpipe;
mod sysprep;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    sigpipe::reset();
    let matches = args::Cli::command().get_matches();
    if matches!(matches.subcommand_name(), Some("serve" | "agent")) {
        sigpipe::ignore();
    }
    let mut cli = match args::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    cli.global.store_on_command_line = store_on_command_line(&matches);
    match commands::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Whether --store was typed (it is global, so look in the subcommands too).
fn store_on_command_line(m: &clap::ArgMatches) -> bool {
    let mut cur = Some(m);
    while let Some(m) = cur {
        if m.value_source("store") == Some(clap::parser::ValueSource::CommandLine) {
            return true;
        }
        cur = m.subcommand().map(|(_, sub)| sub);
    }
    false
}
