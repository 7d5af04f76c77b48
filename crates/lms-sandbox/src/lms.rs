//! The sandbox LMS's server: a small Canvas emulator that answers the way docs/lms-behaviour.md says
//! Canvas does (absolute `Link` pagination, 401 with and without `WWW-Authenticate`, the
//! throttle's 403, expiring tokens). The demo and the integration tests run against it.
//!
//! `/__sandbox/...` is its own control panel (mint a token, fill a throttle bucket, read
//! counters); it exists only here, never in a real LMS. Bind it to loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

use crate::api;
pub use crate::state::{Kind, Sandbox};

#[derive(clap::Args)]
pub struct SandboxArgs {
    /// Address to listen on; port 0 picks a free one (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Host name written into absolute URLs (defaults to the listen address).
    #[arg(long)]
    host: Option<String>,
    /// The developer key's client id. Its secret comes from SANDBOX_CLIENT_SECRET
    /// (default: sandbox-client-secret).
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    client_id: String,
    /// Which LMS to answer as.
    #[arg(long, value_enum, default_value = "canvas")]
    kind: Kind,
}

pub const DEFAULT_CLIENT_ID: &str = "10000000000001";
const DEFAULT_CLIENT_SECRET: &str = "sandbox-client-secret";

/// The developer key the sandbox accepts.
pub struct DeveloperKey {
    pub client_id: String,
    pub client_secret: String,
}

pub fn run_cli(args: SandboxArgs) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("error: {e}"))?;
    rt.block_on(async {
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
            _ => None,
        };
        let listener = TcpListener::bind(args.listen)
            .await
            .map_err(|e| format!("error: --listen {}: {e}", args.listen))?;
        let key = DeveloperKey {
            client_id: args.client_id.clone(),
            client_secret: std::env::var("SANDBOX_CLIENT_SECRET")
                .unwrap_or_else(|_| DEFAULT_CLIENT_SECRET.to_string()),
        };
        let running = start(listener, tls, args.host.as_deref(), key, args.kind)?;
        // Tests and scripts read this line to learn the port.
        println!("sandbox LMS listening on {running}");
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())
    })
}

/// Serves on `listener` in the background of the current runtime; returns its origin.
pub fn start(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    host: Option<&str>,
    key: DeveloperKey,
    kind: Kind,
) -> Result<String, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let host = host.map_or_else(|| addr.ip().to_string(), str::to_string);
    let origin = format!("{scheme}://{host}:{}", addr.port());
    let state = Arc::new(Sandbox::new(
        origin.clone(),
        kind,
        key.client_id,
        key.client_secret,
    ));
    let app: Router = api::router(Arc::clone(&state));
    match tls {
        None => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "sandbox stopped");
                }
            });
        }
        Some(acceptor) => {
            tokio::spawn(serve_tls(listener, acceptor, app));
        }
    }
    Ok(origin)
}

async fn serve_tls(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, app: Router) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("error: {}: {e}", p.display()));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("error: --tls-cert: {e}"))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("error: --tls-key: {e}"))?
        .ok_or("error: --tls-key: no private key in the file")?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("error: TLS: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
