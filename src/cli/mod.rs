//! The command line: `run`, `check`, `mint`, `tokens ...`, `store copy`, `keys new`. The sandbox LMS and the demo are
//! the `lms-sandbox` binary's, outside the product.
//!
//! Exit codes: 0 ok, 1 bad config or failed command, 2 bad usage (clap's own).

mod keys_cmd;
mod mint;
mod store_cmd;
mod tokens_cmd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{process_env, Config};
use crate::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "lms-proxy",
    version,
    about = "Call an LMS REST API as one of its users, without holding their OAuth tokens in the tool."
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: proxy tools' requests to their LMS.
    Run(ConfigArg),
    /// Validate the config and the environment variables it names.
    Check(ConfigArg),
    /// Print a tool JWT for trying the proxy out (HS256 tools only).
    Mint(mint::MintArgs),
    /// Import, list or delete stored user tokens.
    #[command(subcommand)]
    Tokens(tokens_cmd::TokensCommand),
    /// Move grants between stores (SQLite <-> PostgreSQL).
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Make LTI signing keys.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
}

#[derive(clap::Args)]
pub struct ConfigArg {
    /// The TOML config file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: PathBuf,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held until exit: dropping it flushes the last lines.
    let logs = logging::init(cli.log_format);
    let access = logs.access.clone();
    let result = match cli.command {
        Command::Run(args) => load(&args.config).and_then(|config| {
            crate::server::run(config, access).map_err(|e| format!("error: {e}"))
        }),
        Command::Check(args) => load(&args.config).map(|config| {
            println!(
                "{}: OK ({}, {}, {})",
                args.config.display(),
                count(config.platforms.len(), "platform"),
                count(config.routes.len(), "route"),
                count(config.tools.len(), "tool")
            );
        }),
        Command::Mint(args) => mint::run(args),
        Command::Tokens(cmd) => tokens_cmd::run(cmd),
        Command::Store(cmd) => store_cmd::run(cmd),
        Command::Keys(cmd) => keys_cmd::run(cmd),
    };
    logs.access.flush();
    exit_code(result)
}

/// Exit 0, or print the message and exit 1: the contract for every command, in every binary
/// of the project.
pub fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

/// Loads the config or formats every problem for the terminal.
pub fn load(path: &Path) -> Result<Config, String> {
    Config::load(path, &process_env).map_err(|e| {
        let mut out = format!(
            "error: {} has {} problem(s):",
            path.display(),
            e.problems.len()
        );
        for problem in &e.problems {
            out.push_str("\n  ");
            out.push_str(&problem.to_string());
        }
        out
    })
}

/// A small runtime for commands that touch the store.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("error: cannot start a runtime: {e}"))?;
    Ok(rt.block_on(future))
}

/// `1 platform`, `2 platforms`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
