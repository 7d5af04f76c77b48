//! `lms-sandbox`: an LMS emulator that answers as the real LMSes do (see the project's
//! docs/lms-behaviour.md), so the demo, the integration tests and the benchmarks meet real
//! behaviour without a real LMS. It lives outside the product binary: its `/__sandbox`
//! controls and its test-only server stack never ship to a campus.
//!
//! `lms-sandbox [--listen ADDR]` serves the emulator; `lms-sandbox demo` runs it together with
//! the proxy, on the embedded store in a scratch folder, for a newcomer's first run.

mod api;
mod blackboard;
mod brightspace;
mod demo;
mod generic;
mod lms;
mod lti;
mod oauth;
mod oauth_errors;
mod state;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lms_proxy::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "lms-sandbox",
    version,
    about = "An LMS emulator for trying lms-proxy out and for its tests.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    sandbox: lms::SandboxArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The newcomer's first run: the sandbox LMS plus the proxy on the embedded store.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    // One TLS provider for the whole process (the proxy's connector, reqwest, the server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let logs = logging::init(cli.log_format);
    let result = match cli.command {
        Some(Command::Demo(args)) => demo::run(args, logs.access.clone()),
        None => lms::run_cli(cli.sandbox),
    };
    logs.access.flush();
    lms_proxy::cli::exit_code(result)
}
