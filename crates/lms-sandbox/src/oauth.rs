//! The sandbox's OAuth2 side, after Canvas's oauth2_provider_controller (docs/lms-behaviour.md):
//! authorize with a page to pick the user or deny, the token endpoint with its grants and
//! error bodies, single-use ten-minute codes, refresh that kills the previous access token,
//! and revocation.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use url::Url;

use crate::oauth_errors::oauth_error;
use crate::state::{blackboard_uuid, Code, GrantState, Kind, Sandbox};
use lms_proxy::crypto::{random_token, sha256};
use lms_proxy::expiry::now_unix;
use lms_proxy::http::escape_html;

type Shared = Arc<Sandbox>;
type Params = HashMap<String, String>;

const CODE_LIFETIME_SECS: i64 = 600;

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert("location", v);
    }
    response
}

fn redirect_with(redirect_uri: &Url, pairs: &[(&str, &str)]) -> Response {
    let mut url = redirect_uri.clone();
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    redirect(url.as_str())
}

/// The checks authorize and confirm share. `Err` is the finished answer.
fn check_authorize(s: &Sandbox, p: &Params) -> Result<Url, Box<Response>> {
    if p.get("client_id") != Some(&s.client_id) {
        return Err(Box::new(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "unknown client",
        )));
    }
    let mismatch = || {
        Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "redirect_uri does not match client settings",
        ))
    };
    let redirect_uri = p
        .get("redirect_uri")
        .and_then(|r| Url::parse(r).ok())
        .ok_or_else(mismatch)?;
    if let Some(domain) = &s.inner().settings.redirect_domain {
        if redirect_uri.host_str() != Some(domain.as_str()) {
            return Err(mismatch());
        }
    }
    let state = p.get("state").map(String::as_str).unwrap_or("");
    let fail = |error: &str, description: &str| {
        Box::new(redirect_with(
            &redirect_uri,
            &[
                ("error", error),
                ("error_description", description),
                ("state", state),
            ],
        ))
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail(
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    if let Some(scope) = p.get("scope") {
        // Canvas: `url:METHOD|/path`; Brightspace: `group:resource:action`.
        let valid = |scope: &str| match s.kind {
            Kind::Canvas => scope.starts_with("url:"),
            Kind::Brightspace => scope.split(':').count() == 3,
            Kind::Blackboard => ["read", "write", "delete", "offline"].contains(&scope),
            Kind::Oauth2 => !scope.is_empty(),
        };
        if !scope.split(' ').all(valid) {
            return Err(fail("invalid_scope", "a requested scope is invalid"));
        }
    }
    if p.contains_key("code_challenge")
        && p.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return Err(fail(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    Ok(redirect_uri)
}

/// The consent page: pick a user, or deny.
pub async fn authorize(State(s): State<Shared>, Query(p): Query<Params>) -> Response {
    if let Err(answer) = check_authorize(&s, &p) {
        return *answer;
    }
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(p.iter())
        .finish();
    let mut links = String::new();
    for user in crate::state::USERS.iter() {
        links.push_str(&format!(
            "<li><a href=\"/login/oauth2/confirm?{}&amp;sandbox_user={}\">Authorize as {} (user {})</a></li>",
            escape_html(&query),
            user.id,
            escape_html(user.name),
            user.id
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox LMS: authorize</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
         <h1>Sandbox LMS</h1><p>A tool asks to use the Canvas API on your behalf.</p><ul>{links}</ul>\
         <p><a href=\"/login/oauth2/confirm?{}&amp;sandbox_deny=1\">Deny</a></p></body></html>",
        escape_html(&query)
    ))
    .into_response()
}

/// What the page's links do: a code, or `error=access_denied`.
pub async fn confirm(State(s): State<Shared>, Query(p): Query<Params>) -> Response {
    let redirect_uri = match check_authorize(&s, &p) {
        Ok(r) => r,
        Err(answer) => return *answer,
    };
    let state = p.get("state").cloned().unwrap_or_default();
    if p.contains_key("sandbox_deny") {
        return redirect_with(
            &redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied access"),
                ("state", &state),
            ],
        );
    }
    let Some(user_id) = p
        .get("sandbox_user")
        .and_then(|u| u.parse::<u64>().ok())
        .filter(|u| Sandbox::user(*u).is_some())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "pick a user: sandbox_user=42, 43 or 44",
        )
            .into_response();
    };
    let code: String = hex::encode(sha256(random_token().as_bytes()))
        + &hex::encode(sha256(random_token().as_bytes()));
    s.inner().codes.insert(
        code.clone(),
        Code {
            client_id: s.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            user_id,
            scopes: p
                .get("scope")
                .map(|sc| sc.split(' ').map(str::to_string).collect()),
            challenge: p.get("code_challenge").cloned(),
            expires_at: now_unix() + CODE_LIFETIME_SECS,
        },
    );
    redirect_with(&redirect_uri, &[("code", &code), ("state", &state)])
}

/// Form or JSON body, client credentials in the body or HTTP Basic.
pub fn token_params(headers: &HeaderMap, body: &Bytes) -> Params {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let mut params: Params = if json {
        serde_json::from_slice::<HashMap<String, Value>>(body)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
            .collect()
    } else {
        url::form_urlencoded::parse(body).into_owned().collect()
    };
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    if let Some((id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) {
        params
            .entry("client_id".into())
            .or_insert_with(|| id.to_string());
        params
            .entry("client_secret".into())
            .or_insert_with(|| secret.to_string());
    }
    params
}

pub async fn token(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let p = token_params(&headers, &body);
    let grant_type = p.get("grant_type").cloned().unwrap_or_default();
    let settings = {
        let mut inner = s.inner();
        match grant_type.as_str() {
            "authorization_code" => inner.counters.authorization_code += 1,
            "refresh_token" => inner.counters.refresh_token += 1,
            "client_credentials" => inner.counters.client_credentials += 1,
            _ => {}
        }
        inner.settings.clone()
    };
    if settings.token_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(settings.token_delay_ms)).await;
    }
    match settings.token_endpoint.as_str() {
        "down" => {
            return (StatusCode::SERVICE_UNAVAILABLE, "503 Service Unavailable").into_response()
        }
        "error" => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"errors": [{"message": "An error occurred"}]})),
            )
                .into_response()
        }
        _ => {}
    }
    if grant_type == "client_credentials" {
        return crate::lti::client_credentials(&s, &p, settings.access_token_ttl).await;
    }
    // Brightspace takes the client's credentials only as HTTP Basic.
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "));
    if matches!(s.kind, Kind::Brightspace | Kind::Blackboard) && !basic {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication must be HTTP Basic",
        );
    }
    // The generic server's metadata lists client_secret_post only.
    if s.kind == Kind::Oauth2 && basic {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication must be client_secret_post",
        );
    }
    let id = p.get("client_id").map(String::as_str).unwrap_or("");
    let secret = p.get("client_secret").map(String::as_str).unwrap_or("");
    if id != s.client_id {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    }
    if !s.client_ok(id, secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "invalid client");
    }
    let answer = match grant_type.as_str() {
        "authorization_code" => authorization_code(&s, &p, settings.access_token_ttl),
        "refresh_token" => refresh(
            &s,
            &p,
            settings.access_token_ttl,
            settings.rotate_refresh || s.kind != Kind::Canvas,
        ),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The grant_type is not supported",
            )
        }
    };
    match answer {
        Ok(mut body) => {
            shape_for_kind(s.kind, &mut body);
            match settings.token_answer.as_str() {
                "no_user" => {
                    if let Some(fields) = body.as_object_mut() {
                        fields.remove("user");
                    }
                }
                "malformed" => body["access_token"] = Value::from("EVIL\nX-Injected: 1"),
                _ => {}
            }
            Json(body).into_response()
        }
        Err(refused) => {
            if grant_type == "refresh_token" {
                s.inner().counters.refresh_refused += 1;
            }
            *refused
        }
    }
}

/// Brightspace's token answers name no user (the client asks `whoami`); Blackboard's name
/// the user's UUID as `user_id`, and carry a refresh token only for the `offline` scope.
fn shape_for_kind(kind: Kind, body: &mut Value) {
    let Some(fields) = body.as_object_mut() else {
        return;
    };
    if kind == Kind::Canvas {
        fields.remove("scope");
        return;
    }
    let user = fields.remove("user");
    fields.remove("canvas_region");
    if kind == Kind::Blackboard {
        if let Some(id) = user.as_ref().and_then(|u| u["id"].as_u64()) {
            fields.insert("user_id".into(), Value::from(blackboard_uuid(id)));
        }
        // A grant without scopes (issued through `/__sandbox/tokens`) has them all.
        let offline = fields
            .get("scope")
            .and_then(Value::as_str)
            .is_none_or(|s| s.is_empty() || s.split(' ').any(|s| s == "offline"));
        if !offline {
            fields.remove("refresh_token");
        }
    }
}

fn user_json(id: u64) -> Value {
    json!({"id": id, "name": Sandbox::user(id).map_or("Unknown", |u| u.name), "global_id": format!("10000000000{id:03}")})
}

fn authorization_code(s: &Sandbox, p: &Params, ttl: i64) -> Result<Value, Box<Response>> {
    let not_found = || {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "authorization_code not found",
        )
    };
    let code_value = p.get("code").cloned().unwrap_or_default();
    let mut inner = s.inner();
    // A code works once, whatever happens next.
    let Some(code) = inner.codes.remove(&code_value) else {
        return Err(Box::new(not_found()));
    };
    if code.expires_at <= now_unix() {
        return Err(Box::new(not_found()));
    }
    if p.get("client_id") != Some(&code.client_id) {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "incorrect client",
        )));
    }
    if p.get("redirect_uri") != Some(&code.redirect_uri) {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "redirect_uri does not match",
        )));
    }
    if let Some(challenge) = &code.challenge {
        let verified = p
            .get("code_verifier")
            .is_some_and(|v| URL_SAFE_NO_PAD.encode(sha256(v.as_bytes())) == *challenge);
        if !verified {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "code_verifier does not match",
            )));
        }
    }
    let refresh = format!("sandbox-refresh~{}", random_token());
    let access = inner.new_access(&refresh, code.user_id, ttl, code.scopes.clone());
    let scope = code.scopes.as_deref().unwrap_or_default().join(" ");
    inner.grants.insert(
        refresh.clone(),
        GrantState {
            user_id: code.user_id,
            client_id: code.client_id,
            scopes: code.scopes,
            access: access.clone(),
        },
    );
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "user": user_json(code.user_id),
        "refresh_token": refresh,
        "expires_in": ttl,
        "scope": scope,
        "canvas_region": "unknown",
    }))
}

/// Canvas keeps the refresh token and kills the previous access token at once; with
/// `rotate` (Brightspace) the refresh token is single-use and a new one comes back.
fn refresh(s: &Sandbox, p: &Params, ttl: i64, rotate: bool) -> Result<Value, Box<Response>> {
    let refresh = p.get("refresh_token").cloned().unwrap_or_default();
    let mut inner = s.inner();
    let Some(grant) = inner.grants.get(&refresh).cloned() else {
        if inner.rotated.contains(&refresh) || s.kind != Kind::Canvas {
            return Err(Box::new(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the refresh token was already used",
            )));
        }
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "refresh_token not found",
        )));
    };
    if p.get("client_id") != Some(&grant.client_id) {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "incorrect client",
        )));
    }
    // Canvas kills the previous access token at once; Blackboard lets it live out its time.
    if s.kind != Kind::Blackboard {
        inner.access.remove(&grant.access);
    }
    let current = if rotate {
        inner.grants.remove(&refresh);
        inner.rotated.insert(refresh);
        format!("sandbox-refresh~{}", random_token())
    } else {
        refresh
    };
    let access = inner.new_access(&current, grant.user_id, ttl, grant.scopes.clone());
    inner.grants.insert(
        current.clone(),
        GrantState {
            access: access.clone(),
            ..grant.clone()
        },
    );
    let mut body = json!({
        "scope": grant.scopes.as_deref().unwrap_or_default().join(" "),
        "access_token": access,
        "token_type": "Bearer",
        "user": user_json(grant.user_id),
        "expires_in": ttl,
        "canvas_region": "unknown",
    });
    if rotate {
        body["refresh_token"] = Value::from(current);
    }
    Ok(body)
}

/// `DELETE /login/oauth2/token` with the bearer access token: the whole grant goes.
pub async fn revoke(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let mut inner = s.inner();
    let Some(issued) = inner.access.remove(&token) else {
        let mut r = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"errors": [{"message": "Invalid access token."}]})),
        )
            .into_response();
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"canvas-lms\""),
        );
        return r;
    };
    inner.grants.remove(&issued.refresh);
    inner.counters.revocations += 1;
    Json(json!({})).into_response()
}
