//! Starts Pingora with the proxy service on the configured listener.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::{
    RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, UnixShutdownSignalWatch,
};
use pingora::services::listening::Service;

use crate::app::App;
use crate::config::Config;
use crate::head_deadline::HeadDeadlineApp;
use crate::logging::AccessLog;
use crate::proxy::LmsProxy;

/// Seconds between SIGTERM and the listeners closing, then at most this long for requests in
/// flight: a container stops in seconds, not pingora's default five minutes.
const GRACE_PERIOD_SECS: u64 = 1;
const GRACEFUL_SHUTDOWN_TIMEOUT_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error("{0}")]
    Start(String),
}

/// Opens the store, then hands the process to Pingora; returns once Pingora has shut down
/// (SIGTERM, SIGINT), so the caller can flush the logs before the process exits.
pub fn run(config: Config, access: AccessLog) -> Result<(), ServeError> {
    ensure_free(config.server.listen, "server.listen").map_err(ServeError::Start)?;
    if let Some(addr) = config.server.metrics_listen {
        ensure_free(addr, "server.metrics_listen").map_err(ServeError::Start)?;
    }
    let startup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(format!("cannot start the runtime: {e}")))?;
    let app = Arc::new(startup.block_on(App::new(config))?);
    drop(startup);
    if let Some(addr) = app.config().server.metrics_listen {
        crate::metrics::serve(addr, Arc::clone(app.metrics())).map_err(ServeError::Start)?;
        tracing::info!(listen = %addr, "metrics on /metrics");
    }
    let server = build(app, access)?;
    // Not `run_forever`: it calls `process::exit`, and the last log lines would be lost.
    server.run(RunArgs {
        shutdown_signal: Box::new(InterruptIsGraceful),
    });
    Ok(())
}

/// Fails when `addr` cannot be listened on. Pingora would log "is in use, will try again"
/// every second, forever, after saying it listens: an operator must hear at once instead.
pub fn ensure_free(addr: SocketAddr, key: &str) -> Result<(), String> {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(format!("{addr} is in use ({key}); choose another port"))
        }
        Err(e) => Err(format!("cannot listen on {addr} ({key}): {e}")),
    }
}

fn build(app: Arc<App>, access: AccessLog) -> Result<Server, ServeError> {
    let settings = &app.config().server;
    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(GRACE_PERIOD_SECS),
        graceful_shutdown_timeout_seconds: Some(GRACEFUL_SHUTDOWN_TIMEOUT_SECS),
        upstream_keepalive_pool_size: 1024,
        // Timeouts of a second or more (the upstream connect and read timeouts) on tokio's timer
        // rather than pingora's fast timer: they are almost always cancelled, and counted
        // per request that is about 2% fewer instructions (benches/RESULTS.md), without
        // pingora's timer thread waking every 10 ms.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        // One single-threaded runtime per worker, each connection staying on the one that
        // accepted it: the timers above then live and fire on that worker, with no wake-ups
        // across threads. 10-30% more requests/s under load here (benches/RESULTS.md).
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let listen = settings.listen.to_string();
    let tls = settings.tls.clone();
    let public_url = settings.public_url.clone();
    let proxy = pingora::proxy::http_proxy(
        &server.configuration,
        LmsProxy::new(Arc::clone(&app), access),
    );
    let mut service = Service::new(
        "lms-proxy".to_string(),
        HeadDeadlineApp::new(proxy, settings.header_timeout),
    );
    match &tls {
        Some(tls) => service
            .add_tls(
                &listen,
                &tls.cert.to_string_lossy(),
                &tls.key.to_string_lossy(),
            )
            .map_err(|e| ServeError::Start(format!("server.tls: {e}")))?,
        None => service.add_tcp(&listen),
    }
    server.add_service(service);
    tracing::info!(
        listen = %listen,
        tls = tls.is_some(),
        public_url = %public_url,
        "lms-proxy listening"
    );
    Ok(server)
}

/// SIGINT (Ctrl-C) stops the proxy as SIGTERM does. Pingora's own watcher makes SIGINT a
/// fast shutdown that tears the runtimes down under the running accept loops, which then
/// spun on "Accept() failed ... Tokio context ... being shutdown", writing gigabytes of log.
/// The graceful path stops the listeners first.
struct InterruptIsGraceful;

#[async_trait::async_trait]
impl ShutdownSignalWatch for InterruptIsGraceful {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut interrupt), Ok(mut terminate), Ok(mut quit)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::quit()),
        ) else {
            tracing::warn!("cannot watch signals; SIGINT will stop the proxy abruptly");
            return UnixShutdownSignalWatch.recv().await;
        };
        tokio::select! {
            _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
            _ = terminate.recv() => ShutdownSignal::GracefulTerminate,
            _ = interrupt.recv() => ShutdownSignal::GracefulTerminate,
        }
    }
}
