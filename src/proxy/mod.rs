//! The Pingora `ProxyHttp` implementation. Kept thin: each filter hands its one job to the
//! module that owns it (admission, forward, rewrite, endpoints) and returns.

mod access_log;
mod dead_token;
mod endpoints;
mod forward;
mod resolve;
mod respond;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::TcpKeepalive;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::ErrorType;

use crate::admission::{self, Admitted, Facts};
use crate::app::App;
use crate::errors::ProxyError;
use crate::expiry::now_unix;
use crate::logging::AccessLog;
use crate::own_paths;
use crate::rewrite::Rewriter;
use crate::types::PlatformId;

pub use resolve::Resolver;

/// Per-platform trusted roots, in the form pingora's connector takes.
type CaCerts = Arc<pingora::protocols::tls::CaType>;

/// Pooled upstream connections are probed after this long idle, then every
/// [`KEEPALIVE_INTERVAL`], and dropped after [`KEEPALIVE_PROBES`] unanswered probes.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: usize = 3;

pub struct LmsProxy {
    app: Arc<App>,
    access: AccessLog,
    resolver: Resolver,
    ca: HashMap<PlatformId, CaCerts>,
}

/// The dead-token rule's state: the LMS rejects the token, the proxy refreshes and replays
/// once; a second rejection is final.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// The LMS has not rejected the token on this request.
    #[default]
    None,
    /// It has: refresh before the next attempt, which pingora makes as a retry.
    Pending,
    /// The refresh and replay were made (or refused): another rejection is the answer.
    Done,
}

#[derive(Default)]
pub struct RequestCtx {
    started: Option<Instant>,
    facts: Facts,
    admitted: Option<Admitted>,
    addrs: Option<Arc<Vec<SocketAddr>>>,
    attempt: usize,
    upstream_started: Option<Instant>,
    upstream_ms: Option<u128>,
    /// The code of the error the proxy answered, for the access log.
    error: Option<&'static str>,
    /// That error is an answer by design, not worth pingora's error line.
    error_expected: bool,
    /// Where the request is in the one refresh-and-replay a rejected token allows.
    replay: Replay,
    /// What to answer when the request fails on purpose (a dead grant, no token endpoint).
    final_error: Option<ProxyError>,
    /// The answer's body, held back to rewrite its next-page link (Brightspace).
    held_body: Option<crate::body_rewrite::HeldBody>,
}

impl LmsProxy {
    pub fn new(app: Arc<App>, access: AccessLog) -> Self {
        let ca = app
            .config()
            .platforms
            .iter()
            .filter_map(|p| {
                let certs = p.ca_certs.as_ref()?;
                let wrapped: Vec<_> = certs
                    .iter()
                    .map(|der| {
                        pingora::utils::tls::WrappedX509::new(
                            der.clone(),
                            pingora::utils::tls::parse_x509,
                        )
                    })
                    .collect();
                Some((
                    p.id.clone(),
                    Arc::from(wrapped.into_boxed_slice()) as CaCerts,
                ))
            })
            .collect();
        let resolver = Resolver::new(
            app.config()
                .platforms
                .iter()
                .map(|p| (p.id.clone(), p.upstream.host.clone(), p.upstream.port)),
        );
        Self {
            app,
            access,
            resolver,
            ca,
        }
    }

    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        e: ProxyError,
    ) -> Result<bool> {
        ctx.error = Some(e.code());
        respond::send(session, answer_to(session, &e)).await?;
        Ok(true)
    }
}

/// A browser navigation is sent into the consent flow; a tool gets JSON.
fn answer_to(session: &Session, e: &ProxyError) -> crate::http::Answer {
    if admission::is_navigation(session.req_header()) {
        e.answer_for_browser()
    } else {
        e.answer()
    }
}

/// Keeps `e` to answer with and fails the request, not to be retried.
fn fail_with(ctx: &mut RequestCtx, e: ProxyError) -> Box<Error> {
    let mut error = Error::explain(ErrorType::HTTPStatus(e.status()), e.to_string());
    error.set_retry(false);
    ctx.final_error = Some(e);
    error
}

/// What the tool is told when proxying failed for a reason of the network or the LMS.
fn answer_for(e: &Error) -> Option<ProxyError> {
    match e.etype() {
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout => Some(ProxyError::UpstreamTimeout),
        ErrorType::HTTPStatus(400) => Some(ProxyError::BadRequest(
            "the request could not be forwarded".into(),
        )),
        _ => match e.esource() {
            ErrorSource::Upstream => Some(ProxyError::UpstreamUnavailable),
            ErrorSource::Internal | ErrorSource::Unset => Some(ProxyError::Internal),
            // The tool went away or sent something unreadable: nothing useful to say.
            ErrorSource::Downstream => None,
        },
    }
}

fn admitted(ctx: &RequestCtx) -> Result<&Admitted> {
    ctx.admitted
        .as_ref()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "request was not admitted"))
}

#[async_trait]
impl ProxyHttp for LmsProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Some(Instant::now()),
            ..Default::default()
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if own_paths::is_reserved(session.req_header().uri.path()) {
            let served =
                endpoints::serve(&self.app, session.req_header(), &mut ctx.facts.identity).await;
            let answer = served.unwrap_or_else(|e| {
                ctx.error = Some(e.code());
                e.answer()
            });
            respond::send(session, answer).await?;
            return Ok(true);
        }
        let admitted =
            admission::admit(&self.app, session.req_header(), now_unix(), &mut ctx.facts).await;
        match admitted {
            Ok(admitted) => {
                ctx.admitted = Some(admitted);
                Ok(false)
            }
            Err(e) => self.refuse(session, ctx, e).await,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        if ctx.replay == Replay::Pending {
            ctx.replay = Replay::Done;
            if let Err(e) = dead_token::refresh(&self.app, ctx).await {
                return Err(fail_with(ctx, e));
            }
        }
        let platform = Arc::clone(&admitted(ctx)?.route.platform);
        let upstream = &platform.upstream;
        let addrs = match &ctx.addrs {
            Some(addrs) => Arc::clone(addrs),
            None => {
                let addrs = self
                    .resolver
                    .resolve(&platform.id)
                    .await
                    .map_err(|e| Error::explain(ErrorType::ConnectError, e.to_string()))?;
                ctx.addrs = Some(Arc::clone(&addrs));
                addrs
            }
        };
        let addr = addrs
            .get(ctx.attempt)
            .copied()
            .ok_or_else(|| Error::explain(ErrorType::ConnectError, "no address left to try"))?;
        // Over TLS the SNI is always the host name: an empty SNI turns certificate checks off
        // in pingora. Over plain HTTP it is unused, so not copied.
        let sni = if upstream.tls {
            upstream.host.clone()
        } else {
            String::new()
        };
        let mut peer = HttpPeer::new(addr, upstream.tls, sni);
        peer.options.connection_timeout = Some(platform.connect_timeout);
        // Each timeout is a timer per read on the hot path (about 10% of throughput under
        // load, benches/RESULTS.md); the contract asks for connect and read only.
        peer.options.read_timeout = Some(platform.read_timeout);
        // Pooled connections the LMS closes leave the pool at once (pingora watches them).
        // One a NAT or firewall forgets silently is found by TCP keep-alive, which also keeps
        // the mapping fresh, at no cost per request: an idle timeout was a timer per request.
        peer.options.tcp_keepalive = Some(TcpKeepalive {
            idle: KEEPALIVE_IDLE,
            interval: KEEPALIVE_INTERVAL,
            count: KEEPALIVE_PROBES,
            #[cfg(target_os = "linux")]
            user_timeout: Duration::ZERO,
        });
        peer.options.ca = self.ca.get(&platform.id).cloned();
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Try the host's next address, as any client would.
        let more = ctx
            .addrs
            .as_ref()
            .is_some_and(|a| ctx.attempt + 1 < a.len());
        if more {
            ctx.attempt += 1;
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Err(e) = forward::prepare(upstream_request, admitted(ctx)?) {
            return Err(match e {
                forward::ForwardError::BadUri(_) => {
                    Error::explain(ErrorType::HTTPStatus(400), e.to_string())
                }
                forward::ForwardError::TokenNotAHeader => {
                    tracing::error!(error = %e, "request not forwarded");
                    fail_with(ctx, ProxyError::UpstreamUnavailable)
                }
            });
        }
        ctx.upstream_started = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_ms = ctx.upstream_started.map(|t| t.elapsed().as_millis());
        let route = &admitted(ctx)?.route;
        let service = route.grant != crate::config::RouteGrant::User;
        if dead_token::is_dead_token(route.platform.provider, service, response) {
            if ctx.replay == Replay::None {
                ctx.replay = Replay::Pending;
                let mut e = Error::explain(
                    ErrorType::Custom("lms_rejected_token"),
                    "the LMS rejected the access token",
                );
                e.set_retry(true);
                return Err(e);
            }
            let e = dead_token::rejected_after_refresh(ctx);
            return Err(fail_with(ctx, e));
        }
        let route = &admitted(ctx)?.route;
        let rewriter = Rewriter {
            upstream: &route.platform.upstream,
            public_base: &route.public_base,
        };
        respond::rewrite_headers(response, &rewriter);
        if session.req_header().method != http::Method::HEAD {
            ctx.held_body = respond::hold_body(response, route.platform.provider);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        let (Some(held), Some(admitted)) = (ctx.held_body.as_mut(), ctx.admitted.as_ref()) else {
            return Ok(None);
        };
        let rewriter = Rewriter {
            upstream: &admitted.route.platform.upstream,
            public_base: &admitted.route.public_base,
        };
        *body = held.take(body.take(), end_of_stream, &rewriter);
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        let replayable = !session.as_ref().retry_buffer_truncated();
        if ctx.replay == Replay::Pending {
            // Any method may be replayed after a rejected token: the LMS did nothing with it.
            e.set_retry(replayable);
        } else if !session.req_header().method.is_idempotent() || !replayable {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        if ctx.replay == Replay::Pending {
            ctx.replay = Replay::Done;
            ctx.final_error = Some(dead_token::not_replayable(&self.app, ctx).await);
        }
        let error = ctx.final_error.take().or_else(|| answer_for(e));
        // Pingora closes the tool's connection after a failed proxy attempt, whatever this
        // hook says, so the answer must say so: a pooled client that believed
        // `keep-alive` would send its next request into a closed socket.
        session.set_keepalive(None);
        let mut code = 0;
        if let Some(error) = error {
            code = error.status();
            ctx.error = Some(error.code());
            ctx.error_expected = error.is_expected();
            if session.response_written().is_none() {
                let answer = answer_to(session, &error);
                if let Err(write_error) = respond::send(session, answer).await {
                    tracing::debug!(error = %write_error, "could not send the error answer");
                }
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// The replay after a rejected token is routine, not worth pingora's retry warning.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
        _error: &Error,
        _context: pingora::proxy::ProxyWarnLogContext,
    ) -> bool {
        ctx.replay == Replay::Pending
    }

    /// A dead grant is an answer, not a fault worth an error line; everything else is
    /// logged by pingora as usual.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, _error: &Error) -> bool {
        ctx.error_expected
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        access_log::log(session, ctx, self.app.metrics(), &self.access);
    }

    /// Pingora's error lines name the request with this; the query is left out because a
    /// tool may have put a token there.
    fn request_summary(&self, session: &Session, _ctx: &RequestCtx) -> String {
        let req = session.req_header();
        format!("{} {}", req.method, req.uri.path())
    }
}
