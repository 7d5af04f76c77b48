//! One line per request: who, where, what came back and how long it took. Never the query
//! string, a header value or a token.

use pingora::proxy::Session;

use super::RequestCtx;
use crate::logging::{AccessLine, AccessLog};
use crate::metrics::Metrics;

pub fn log(session: &Session, ctx: &RequestCtx, metrics: &Metrics, access: &AccessLog) {
    let req = session.req_header();
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let route = ctx.facts.route.as_ref();
    let identity = ctx.facts.identity.as_ref();
    let cache = match ctx.facts.cache_hit {
        Some(true) => "hit",
        Some(false) => "miss",
        None => "-",
    };
    let total_micros = ctx.started.map_or(0, |t| t.elapsed().as_micros() as u64);
    metrics.request(
        route.map(|r| &r.platform.id),
        status,
        total_micros,
        ctx.facts.cache_hit,
    );
    access.write(&AccessLine {
        method: req.method.as_str(),
        path: req.uri.path(),
        status,
        route: route.map_or("-", |r| r.prefix.as_str()),
        platform: route.map_or("-", |r| r.platform.id.as_str()),
        tool: identity
            .map(|i| i.tool.id.as_str())
            .or_else(|| ctx.facts.service_tool.as_ref().map(|t| t.id.as_str()))
            .unwrap_or("-"),
        user: identity.map_or("-", |i| i.user.as_str()),
        upstream_ms: ctx.upstream_ms.map(|ms| ms as u64),
        total_ms: total_micros / 1000,
        cache,
        error: ctx.error.unwrap_or("-"),
    });
}
