//! Log output: human-readable lines by default, one JSON object per line with
//! `--log-format json`. `RUST_LOG` picks levels (default `info`).
//!
//! Lines go to stderr through a background writer with a buffer: a write syscall per access
//! line on the proxy's worker threads cost several percent of throughput under load.

mod access;

use std::io::BufWriter;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

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
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer.clone())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
    };
    // A second subscriber (tests that init twice) is refused; the first one stays.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer.with_filter(filter_fn(no_dumps)))
        .try_init();
    // Asked after the subscriber is installed, so `RUST_LOG` decides as for any other line.
    let enabled = tracing::enabled!(target: access::TARGET, tracing::Level::INFO);
    Logging {
        guard,
        access: AccessLog::new(format, enabled.then_some(writer)),
    }
}

/// What pingora may log, whatever `RUST_LOG` asks for:
/// - no debug or trace lines: they dump whole request and response heads and bodies, the
///   user's LMS token and the tool's credential among them, so no level prints a secret;
/// - not "failed to acquire reusable stream", the only ERROR of `pingora_core::connectors`:
///   a race in pingora's connection pool (it takes sole ownership of a pooled LMS connection
///   right after the idle watcher on the other worker released its lock, but before it
///   dropped its handle), after which pingora opens a new connection. Harmless, and about
///   one proxied request in ten under load: an ERROR line for it drowned real errors.
///
/// And from sqlx (the PostgreSQL store) only warnings and errors: below that it writes SQL
/// and server notices (migration chatter), which an operator has no use for.
fn no_dumps(meta: &tracing::Metadata<'_>) -> bool {
    if meta.target().starts_with("sqlx") {
        return *meta.level() <= tracing::Level::WARN;
    }
    if !meta.target().starts_with("pingora") {
        return true;
    }
    if *meta.level() == tracing::Level::ERROR && meta.target() == "pingora_core::connectors" {
        return false;
    }
    *meta.level() <= tracing::Level::INFO
}
