//! A generic OAuth2 server (`--kind oauth2`), as docs/lms-behaviour.md describes one: RFC 8414
//! metadata at `/.well-known/oauth-authorization-server` naming the sandbox's origin as
//! issuer, `client_secret_post` only (so a proxy that ignored the metadata and sent HTTP Basic
//! is refused), S256 PKCE, rotating refresh tokens, RFC 7009 revocation, and a userinfo
//! endpoint whose `sub` names the user. The API is the Canvas emulator's (`Link` pagination,
//! 401 with `WWW-Authenticate`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::state::{Kind, Sandbox};

type Shared = Arc<Sandbox>;

pub const TOKEN_PATH: &str = "/oauth2/token";
pub const REVOKE_PATH: &str = "/oauth2/revoke";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(TOKEN_PATH, post(crate::oauth::token))
        .route(REVOKE_PATH, post(revoke))
        .route(USERINFO_PATH, get(userinfo))
}

/// The metadata document, for `--kind oauth2` only: other kinds publish none.
pub fn document(s: &Sandbox) -> serde_json::Value {
    let o = &s.origin;
    json!({
        "issuer": o,
        "authorization_endpoint": format!("{o}/oauth2/auth"),
        "token_endpoint": format!("{o}{TOKEN_PATH}"),
        "revocation_endpoint": format!("{o}{REVOKE_PATH}"),
        "userinfo_endpoint": format!("{o}{USERINFO_PATH}"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    })
}

async fn metadata(State(s): State<Shared>) -> Response {
    if s.kind != Kind::Oauth2 {
        return StatusCode::NOT_FOUND.into_response();
    }
    Json(document(&s)).into_response()
}

/// RFC 7009: the client authenticates; the token (refresh or access) ends its whole grant;
/// 200 even for a token the server does not know.
async fn revoke(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let p = crate::oauth::token_params(&headers, &body);
    let id = p.get("client_id").map(String::as_str).unwrap_or("");
    let secret = p.get("client_secret").map(String::as_str).unwrap_or("");
    if !s.client_ok(id, secret) {
        return crate::oauth_errors::oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "invalid client",
        );
    }
    let token = p.get("token").cloned().unwrap_or_default();
    let mut inner = s.inner();
    let refresh = match inner.access.get(&token) {
        Some(issued) => Some(issued.refresh.clone()),
        None => inner.grants.contains_key(&token).then_some(token),
    };
    if let Some(refresh) = refresh {
        if let Some(grant) = inner.grants.remove(&refresh) {
            inner.access.remove(&grant.access);
        }
        inner.access.retain(|_, issued| issued.refresh != refresh);
        inner.counters.revocations += 1;
    }
    StatusCode::OK.into_response()
}

/// OpenID Connect's userinfo shape: `sub` as a string.
async fn userinfo(State(s): State<Shared>, headers: HeaderMap) -> Response {
    match s.check(crate::state::bearer_of(&headers)) {
        Ok(issued) => Json(json!({
            "sub": issued.user_id.to_string(),
            "name": Sandbox::user(issued.user_id).map_or("Unknown", |u| u.name),
        }))
        .into_response(),
        Err(_) => {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            r.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            r
        }
    }
}
