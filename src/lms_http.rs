//! The HTTP client the proxy uses for its own calls to an LMS (token endpoint, who-am-I,
//! discovery): rustls with the platform's `ca_file` or the system roots, bounded timeouts,
//! and no redirects, since a redirected token request would carry the client secret to
//! wherever the LMS (or anyone on its path) pointed.

use std::sync::Arc;
use std::time::Duration;

/// What a client to one LMS is built from.
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings<'a> {
    /// DER certificates trusted instead of the system roots.
    pub ca_certs: Option<&'a [Vec<u8>]>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

pub fn client(settings: ClientSettings<'_>) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    match settings.ca_certs {
        Some(certs) => {
            for der in certs {
                roots
                    .add(rustls::pki_types::CertificateDer::from(der.clone()))
                    .map_err(|e| format!("ca_file: {e}"))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A system certificate rustls cannot use is left out; the rest still verify.
                if let Err(e) = roots.add(cert) {
                    tracing::debug!(error = %e, "skipped a system CA certificate");
                }
            }
        }
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(Arc::new(roots))
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.read_timeout.min(Duration::from_secs(30)) + settings.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lms-proxy/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// reqwest's error with its causes ("error sending request" alone says nothing), without
/// the URL: ours never carry secrets in query strings, but stay on the safe side.
pub fn redact(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
