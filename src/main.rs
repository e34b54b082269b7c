//! eghostbuster: removes ghost resources left by dead processes (lock
//! files, TCP sockets idle in CLOSE_WAIT), never one a live process relies
//! on. This file parses the command line and dispatches; the ghost classes
//! live in their folders (src/locks, src/sockets), registered in
//! src/classes.rs, and the roles in theirs (src/agent: the daemon and the
//! commands; src/files: what file classes share; src/host: facts about the
//! host).

mod agent;
mod classes;
mod cli;
mod files;
mod host;
mod locks;
mod man;
mod pidfiles;
mod sockets;
mod unix_sockets;

use std::process::ExitCode;

use crate::agent::config::{self, CliError};
use crate::cli::{Command, Usage};
use crate::host::sysenv::Unmet;

/// Exit codes (README): 0 success, 1 runtime failure, 2 bad usage or an
/// unmet requirement, 3 (`status`) no daemon running.
const EXIT_RUNTIME: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match config::parse_command_line(&argv) {
        Ok(c) => c,
        Err(CliError::Clap(e)) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(CliError::Clap(e))
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            eprintln!("eghostbuster: a subcommand is required: run (see --help)");
            return ExitCode::from(EXIT_USAGE);
        }
        Err(CliError::Clap(e)) => {
            // clap's whole message: the suggestion, the allowed values
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
        Err(CliError::Usage(u)) => {
            eprintln!("eghostbuster: {u}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let done = |r: anyhow::Result<u8>| match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit_for(e),
    };
    match cli.command {
        Command::Run(args) => {
            host::memory::tune();
            agent::logging::init(&args.log);
            done(agent::run::run(args, argv).map(|()| 0))
        }
        Command::Sweep(args) => {
            agent::logging::init_text();
            done(agent::sweep::sweep(args))
        }
        Command::Status { status_file, json } => {
            ExitCode::from(agent::status::show(&status_file, json))
        }
        Command::Unpin { pin_dir } => {
            agent::logging::init_text();
            done(host::pins::unpin_all(&pin_dir).map(|()| 0))
        }
        Command::CheckConfig { config } => {
            let explicit = argv.iter().any(|a| {
                a.to_str()
                    .is_some_and(|a| a == "--config" || a.starts_with("--config="))
            });
            match config::check(&config, explicit) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("eghostbuster: {e}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        other => match cli::generate(&other, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eghostbuster: {e}");
                ExitCode::from(EXIT_RUNTIME)
            }
        },
    }
}

/// One line on stderr, and the documented exit code.
fn exit_for(e: anyhow::Error) -> ExitCode {
    if let Some(u) = e.downcast_ref::<Unmet>() {
        eprintln!("eghostbuster: {u}");
        ExitCode::from(EXIT_USAGE)
    } else if let Some(u) = e.downcast_ref::<Usage>() {
        eprintln!("eghostbuster: {u}");
        ExitCode::from(EXIT_USAGE)
    } else {
        eprintln!("eghostbuster: {e:#}");
        ExitCode::from(EXIT_RUNTIME)
    }
}
