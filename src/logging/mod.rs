//! Log output: human-readable lines by default, one JSON object per line with
//! `--log-format json`. `RUST_LOG` picks levels (default `info`).
//!
//! Lines go to stderr through a background writer with a buffer: a write syscall per access
//! line on the proxy's worker threads cost several percent of throughput under load.

mod access;

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

pub use access::{AccessLine, AccessLog};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What logging hands the rest of the program: the guard that flushes lines when dropped
/// (keep it until exit) and the access log, which writes to the same stream.
pub struct Logging {
    pub guard: WorkerGuard,
    pub access: AccessLog,
}

pub fn init(format: LogFormat) -> Logging {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Lossless: when the writer falls behind, request threads wait rather than drop lines.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Asked after the subscriber is installed, so `RUST_LOG` decides as for any other line.
    let enabled = tracing::enabled!(target: access::TARGET, tracing::Level::INFO);
    Logging {
        guard,
        access: AccessLog::new(format, enabled.then_some(writer)),
    }
}
