//! The checks a proxied request passes before it may reach the LMS. Sanity first (header size,
//! dot segments: 431/400), then the contract's order:
//! route (404) -> tool credential (401) -> tool allowed on the platform (403) -> route
//! allowlist (403) -> the user's token (401 `authorization_required`).
//!
//! A route with `grant = "client_credentials"` takes the same path with two differences: the
//! credential need not name a user, and the token is the platform's LTI service token (503
//! `lms_unavailable` when none can be had), so the two kinds of route never share a token.

use std::sync::Arc;

use http::request::Parts;

use crate::app::App;
use crate::config::{RouteGrant, Tool};
use crate::errors::ProxyError;
use crate::identity::{CredentialError, Identity};
use crate::lifecycle::{Usable, RETRY_AFTER_SECS};
use crate::routes::{path_problem, RouteEntry};
use crate::service_tokens::ServiceError;
use crate::tickets::Ticket;
use crate::tokens::{TokenError, TokenRecord};
use crate::types::{PlatformId, ScopeSet, TokenKey};

/// Larger header blocks are refused before any work: no LMS takes more, and pingora's own
/// limit (1 MiB) would let a tool push a megabyte of headers through to the LMS.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A request that may go to the LMS, with what forwarding it needs.
pub struct Admitted {
    pub route: Arc<RouteEntry>,
    /// The path after the route prefix, always starting with `/`.
    pub rest: String,
    pub holder: Holder,
    pub token: Arc<TokenRecord>,
}

/// Whose token the request carries.
pub enum Holder {
    /// A user's grant to the tool.
    User { identity: Identity, key: TokenKey },
    /// The platform's LTI service token for these scopes, used on behalf of `tool`.
    Service { tool: Arc<Tool>, scopes: ScopeSet },
}

/// What is known about a request so far, for its log line, whether or not it was admitted.
#[derive(Default)]
pub struct Facts {
    pub route: Option<Arc<RouteEntry>>,
    pub identity: Option<Identity>,
    /// The tool, on a route that needs no user.
    pub service_tool: Option<Arc<Tool>>,
    pub cache_hit: Option<bool>,
}

pub async fn admit(
    app: &App,
    req: &Parts,
    now: i64,
    facts: &mut Facts,
) -> Result<Admitted, ProxyError> {
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ProxyError::HeadersTooLarge(MAX_HEADER_BYTES));
    }
    let path = req.uri.path();
    if let Some(problem) = path_problem(path) {
        return Err(ProxyError::BadRequest(problem.into()));
    }
    let host = if app.routes().by_host() {
        request_host(req)
    } else {
        None
    };
    let found = app
        .routes()
        .find(host, path)
        .ok_or(ProxyError::UnknownRoute)?;
    let route = Arc::clone(found.route);
    let rest = found.rest.to_string();
    facts.route = Some(Arc::clone(&route));
    if let RouteGrant::Service(scopes) = &route.grant {
        let scopes = scopes.clone();
        return admit_service(app, req, route, rest, scopes, now, facts).await;
    }

    let identity = app
        .auth()
        .authenticate_headers(&req.headers, now)
        .inspect_err(|e| tracing::debug!(reason = %e.detail(), "tool credential refused"))?;
    facts.identity = Some(identity.clone());
    if !identity.origins.allow(route.origin) {
        return Err(CredentialError::WrongAudience.into());
    }

    let platform = &route.platform;
    let key = grant_key(&identity, &platform.id)?;
    if !route.allows(&req.method, &rest) {
        return Err(ProxyError::Forbidden(format!(
            "{} {} is not in this route's allowlist",
            req.method, rest
        )));
    }

    let usable = app.lifecycle().usable(&key, platform, now).await;
    if let Ok(usable) = &usable {
        facts.cache_hit = usable.cache_hit();
    }
    let token = token_or_refusal(app, usable, &identity, &platform.id, now)?;
    Ok(Admitted {
        route,
        rest,
        holder: Holder::User { identity, key },
        token,
    })
}

/// A route that carries the platform's LTI service token: the tool's credential is checked
/// as everywhere (a user is not needed), then the tool's right to the platform and the
/// allowlist, then the token.
async fn admit_service(
    app: &App,
    req: &Parts,
    route: Arc<RouteEntry>,
    rest: String,
    scopes: ScopeSet,
    now: i64,
    facts: &mut Facts,
) -> Result<Admitted, ProxyError> {
    let caller = app
        .auth()
        .caller_from_headers(&req.headers, now)
        .inspect_err(|e| tracing::debug!(reason = %e.detail(), "tool credential refused"))?;
    facts.service_tool = Some(Arc::clone(&caller.tool));
    if !caller.origins.allow(route.origin) {
        return Err(CredentialError::WrongAudience.into());
    }
    let platform = &route.platform;
    if !caller.tool.may_use(&platform.id) {
        return Err(ProxyError::Forbidden(format!(
            "tool {} may not use platform {}",
            caller.tool.id, platform.id
        )));
    }
    if !route.allows(&req.method, &rest) {
        return Err(ProxyError::Forbidden(format!(
            "{} {} is not in this route's allowlist",
            req.method, rest
        )));
    }
    let (token, cache_hit) = app
        .service_tokens()
        .token(platform, &scopes, now)
        .await
        .map_err(service_refusal)?;
    facts.cache_hit = Some(cache_hit);
    Ok(Admitted {
        route,
        rest,
        holder: Holder::Service {
            tool: caller.tool,
            scopes,
        },
        token,
    })
}

/// What a service token that could not be had means to the tool: the store's fault or the
/// LMS's (the reason is in the log already), never the tool's.
pub fn service_refusal(e: ServiceError) -> ProxyError {
    match e {
        ServiceError::Store(e) => store_unavailable(&e),
        ServiceError::Unavailable(_) => ProxyError::LmsUnavailable {
            retry_after_secs: RETRY_AFTER_SECS,
        },
    }
}

/// What a lifecycle outcome means to the caller, written once for every path that asks for
/// a token (admission, the dead-token replay, the token export): the token, or the answer
/// that takes its place.
pub fn token_or_refusal(
    app: &App,
    outcome: Result<Usable, TokenError>,
    identity: &Identity,
    platform: &PlatformId,
    now: i64,
) -> Result<Arc<TokenRecord>, ProxyError> {
    match outcome {
        Ok(Usable::Token { record, .. }) => Ok(record),
        Ok(Usable::Missing { .. }) => Err(authorization_required(app, identity, platform, now)),
        Ok(Usable::Unavailable) => Err(ProxyError::LmsUnavailable {
            retry_after_secs: RETRY_AFTER_SECS,
        }),
        Err(e) => Err(store_unavailable(&e)),
    }
}

/// The store could not answer: logged once here, 503 `store_unavailable` to the caller.
pub fn store_unavailable(e: &dyn std::fmt::Display) -> ProxyError {
    tracing::error!(error = %e, "token store unavailable");
    ProxyError::StoreUnavailable
}

/// The key of the grant this caller would use on `platform`, if the tool may use it at all:
/// grants are per (platform, tool, user), so one tool never reaches another's.
pub fn grant_key(identity: &Identity, platform: &PlatformId) -> Result<TokenKey, ProxyError> {
    if !identity.tool.may_use(platform) {
        return Err(ProxyError::Forbidden(format!(
            "tool {} may not use platform {platform}",
            identity.tool.id
        )));
    }
    Ok(TokenKey::new(
        platform.clone(),
        identity.tool.id.clone(),
        identity.user.clone(),
    ))
}

/// The 401 that starts the consent flow: a ticket for this user, tool and platform.
pub fn authorization_required(
    app: &App,
    identity: &Identity,
    platform: &PlatformId,
    now: i64,
) -> ProxyError {
    let ticket = Ticket::new(
        platform,
        &identity.tool.id,
        &identity.user,
        identity.lms_user_id.as_deref(),
        None,
        now,
    );
    ProxyError::AuthorizationRequired {
        platform: platform.clone(),
        authorize_url: ticket.start_url(app.crypto(), &app.config().server.public_url),
    }
}

/// The host a request was sent to: its `Host` header, or the authority of an absolute URI.
pub fn request_host(req: &Parts) -> Option<&str> {
    req.headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
}

/// A browser navigation gets a redirect into the consent flow instead of a JSON 401.
pub fn is_navigation(req: &Parts) -> bool {
    let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-mode").is_some_and(|m| m.eq_ignore_ascii_case("navigate")) {
        return true;
    }
    header("accept")
        .and_then(|accept| accept.split(',').next())
        .map(|first| first.split(';').next().unwrap_or("").trim())
        .is_some_and(|media| media.eq_ignore_ascii_case("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri("/canvas/api/v1/courses");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn navigation_detection() {
        assert!(is_navigation(&parts(&[("sec-fetch-mode", "navigate")])));
        assert!(is_navigation(&parts(&[(
            "accept",
            "text/html,application/xhtml+xml;q=0.9"
        )])));
        assert!(!is_navigation(&parts(&[(
            "accept",
            "application/json, text/html"
        )])));
        assert!(!is_navigation(&parts(&[("sec-fetch-mode", "cors")])));
        assert!(!is_navigation(&parts(&[])));
    }
}
