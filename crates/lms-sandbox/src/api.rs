//! The sandbox's HTTP surface: a slice of Canvas's REST API and the `/__sandbox` controls.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::oauth;
use crate::state::{Kind, Sandbox, TokenProblem, COURSE_COUNT};

type Shared = Arc<Sandbox>;

pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/api/v1/users/self", get(users_self))
        .route("/api/v1/courses", get(courses))
        .route("/api/v1/courses/{id}", get(course))
        .route("/api/v1/courses/{id}/discussion_topics", post(echo_post))
        .route("/api/v1/accounts/{id}", get(no_permission))
        .route("/api/v1/files/{id}/download", get(file_download))
        .route("/api/v1/sandbox/echo", any(echo_request))
        .route("/api/v1/sandbox/slow", get(slow))
        .route("/api/v1/sandbox/headers", get(headers_as_asked))
        .route("/{base}/api/v1/sandbox/headers", get(headers_as_asked))
        .route("/courses/{id}", get(course_page))
        .route("/login/oauth2/auth", get(oauth::authorize))
        .route("/login/oauth2/confirm", get(oauth::confirm))
        .route(
            "/login/oauth2/token",
            post(oauth::token).delete(oauth::revoke),
        )
        .route("/__sandbox/tokens", post(admin_issue))
        .route("/__sandbox/throttle", post(admin_throttle))
        .route("/__sandbox/settings", post(admin_settings))
        .route("/__sandbox/expire", post(admin_expire))
        .route("/__sandbox/revoke_grant", post(admin_revoke_grant))
        .route("/__sandbox/stats", get(admin_stats))
        // Brightspace's OAuth endpoints (on auth.brightspace.com in real life), same flow.
        .route("/oauth2/auth", get(oauth::authorize))
        .route("/core/connect/token", post(oauth::token))
        .merge(crate::brightspace::routes())
        .merge(crate::blackboard::routes())
        .merge(crate::generic::routes())
        .merge(crate::lti::routes())
        .with_state(state)
}

/// A request that passed Canvas's token and throttle checks.
struct Caller {
    user_id: u64,
    remaining: f64,
}

fn canvas_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errors": [{"message": message}]}))).into_response()
}

fn bearer(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// Canvas's order: token, then throttle, then scopes.
fn authorize(
    state: &Sandbox,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
) -> Result<Caller, Box<Response>> {
    let Some(token) = bearer(headers, uri) else {
        return Err(Box::new(invalid_token("Invalid access token.")));
    };
    let issued = match state.check(&token) {
        Ok(issued) => issued,
        Err(TokenProblem::Invalid) => return Err(Box::new(invalid_token("Invalid access token."))),
        Err(TokenProblem::Expired) => return Err(Box::new(invalid_token("Expired access token."))),
    };
    let throttle = state.throttle(&token);
    if !throttle.allowed {
        let mut response = (
            StatusCode::FORBIDDEN,
            [("content-type", "text/plain; charset=utf-8")],
            "403 Forbidden (Rate Limit Exceeded)\n",
        )
            .into_response();
        add_cost_headers(&mut response, 0.0);
        return Err(Box::new(response));
    }
    // Only Canvas scopes name API paths; a generic server's scopes mean nothing here.
    if let Some(scopes) = issued
        .scopes
        .as_ref()
        .filter(|_| state.kind == Kind::Canvas)
    {
        if !scopes.iter().any(|s| scope_allows(s, method, uri.path())) {
            let mut response = canvas_error(
                StatusCode::UNAUTHORIZED,
                "Insufficient scopes on access token.",
            );
            add_cost_headers(&mut response, throttle.remaining);
            return Err(Box::new(response));
        }
    }
    Ok(Caller {
        user_id: issued.user_id,
        remaining: throttle.remaining,
    })
}

fn invalid_token(message: &str) -> Response {
    let mut response = canvas_error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static("Bearer realm=\"canvas-lms\""),
    );
    response
}

/// `url:GET|/api/v1/courses/:course_id` style; `:name` segments match any one segment.
fn scope_allows(scope: &str, method: &Method, path: &str) -> bool {
    let Some((scope_method, scope_path)) =
        scope.strip_prefix("url:").and_then(|s| s.split_once('|'))
    else {
        return false;
    };
    if scope_method != method.as_str() {
        return false;
    }
    let want: Vec<&str> = scope_path.split('/').collect();
    let got: Vec<&str> = path.split('/').collect();
    want.len() == got.len()
        && want
            .iter()
            .zip(&got)
            .all(|(w, g)| w.starts_with(':') || w == g)
}

fn add_cost_headers(response: &mut Response, remaining: f64) {
    let headers = response.headers_mut();
    headers.insert("x-request-cost", HeaderValue::from_static("1.0"));
    if let Ok(v) = HeaderValue::from_str(&format!("{remaining:.1}")) {
        headers.insert("x-rate-limit-remaining", v);
    }
}

fn ok_json(caller: &Caller, body: Value) -> Response {
    let mut response = Json(body).into_response();
    add_cost_headers(&mut response, caller.remaining);
    response
}

fn user_json(id: u64) -> Value {
    let name = Sandbox::user(id).map_or("Unknown", |u| u.name);
    json!({"id": id, "name": name, "short_name": name, "sortable_name": name})
}

async fn users_self(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if s.inner().settings.whoami_down {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"errors": [{"message": "An error occurred"}]})),
        )
            .into_response();
    }
    match authorize(&s, &headers, &method, &uri) {
        Ok(caller) => ok_json(&caller, user_json(caller.user_id)),
        Err(r) => *r,
    }
}

fn course_json(id: u64) -> Value {
    json!({"id": id, "name": format!("Course {id}"), "course_code": format!("C{id:03}"), "workflow_state": "available"})
}

async fn courses(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let caller = match authorize(&s, &headers, &method, &uri) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    // Canvas: per_page defaults to 10 and is capped at 100; bad values fall back to defaults.
    let per_page = query
        .get("per_page")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(10)
        .min(100);
    let page = query
        .get("page")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1);
    let last = COURSE_COUNT.div_ceil(per_page).max(1);
    let items: Vec<Value> = ((page - 1) * per_page + 1..=(page * per_page).min(COURSE_COUNT))
        .map(course_json)
        .collect();
    let mut response = ok_json(&caller, Value::Array(items));
    let link = link_header(&s.origin, uri.path(), &query, page, per_page, last);
    if let Ok(v) = HeaderValue::from_str(&link) {
        response.headers_mut().insert("link", v);
    }
    response
}

/// Canvas's format: absolute URLs on its own host, the query kept with page and per_page
/// set, comma-joined without spaces.
fn link_header(
    origin: &str,
    path: &str,
    query: &HashMap<String, String>,
    page: u64,
    per_page: u64,
    last: u64,
) -> String {
    let url = |p: u64| {
        let mut params: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| *k != "page" && *k != "per_page" && *k != "access_token")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort();
        params.push(("page".into(), p.to_string()));
        params.push(("per_page".into(), per_page.to_string()));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        format!("{origin}{path}?{query}")
    };
    let mut parts = vec![format!("<{}>; rel=\"current\"", url(page))];
    if page < last {
        parts.push(format!("<{}>; rel=\"next\"", url(page + 1)));
    }
    if page > 1 {
        parts.push(format!("<{}>; rel=\"prev\"", url(page - 1)));
    }
    parts.push(format!("<{}>; rel=\"first\"", url(1)));
    parts.push(format!("<{}>; rel=\"last\"", url(last)));
    parts.join(",")
}

async fn course(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    match authorize(&s, &headers, &method, &uri) {
        Ok(caller) if (1..=COURSE_COUNT).contains(&id) => ok_json(&caller, course_json(id)),
        Ok(_) => canvas_error(
            StatusCode::NOT_FOUND,
            "The specified resource does not exist.",
        ),
        Err(r) => *r,
    }
}

/// Echoes the posted body back with its content type.
async fn echo_post(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authorize(&s, &headers, &method, &uri) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let content_type = headers
        .get("content-type")
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert("content-type", content_type);
    add_cost_headers(&mut response, caller.remaining);
    response
}

/// Canvas's "no permission": 401 without `WWW-Authenticate`.
async fn no_permission(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match authorize(&s, &headers, &method, &uri) {
        Ok(_) => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"status": "unauthorized", "errors": [{"message": "user not authorized to perform that action"}]})),
        )
            .into_response(),
        Err(r) => *r,
    }
}

/// A pre-signed download on another origin, as Canvas answers for files.
async fn file_download(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<u64>,
) -> Response {
    match authorize(&s, &headers, &method, &uri) {
        Ok(_) => redirect(&format!(
            "https://files.sandbox-cdn.test/files/{id}?sig=abc123"
        )),
        Err(r) => *r,
    }
}

/// Answers with the `Link` and `Location` given in `?link=` and `?location=`, `{origin}`
/// standing for the sandbox's own origin; also under one extra leading segment, so that a
/// platform whose `base_url` carries a path (`.../lms`) reaches it. For rewriting tests.
async fn headers_as_asked(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorize(&s, &headers, &method, &uri) {
        return *r;
    }
    let mut response = Json(json!({})).into_response();
    let asked = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes());
    for (name, value) in asked {
        let value = value.replace("{origin}", &s.origin);
        let Ok(value) = HeaderValue::from_str(&value) else {
            continue;
        };
        match name.as_ref() {
            "link" => {
                response.headers_mut().append("link", value);
            }
            "location" => {
                response.headers_mut().insert("location", value);
            }
            _ => {}
        }
    }
    response
}

/// A same-origin absolute redirect, to show `Location` rewriting.
async fn course_page(State(s): State<Shared>, Path(id): Path<u64>) -> Response {
    redirect(&format!("{}/api/v1/courses/{id}", s.origin))
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert("location", v);
    }
    response
}

/// What the LMS received, for tests of what the proxy forwards and strips.
async fn echo_request(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match authorize(&s, &headers, &method, &uri) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    // Repeated headers are joined with ", " (as HTTP may combine them), so a test sees every
    // value that arrived, not just the last.
    let mut seen = serde_json::Map::new();
    for name in headers.keys() {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        seen.insert(name.as_str().to_string(), Value::from(values.join(", ")));
    }
    let headers = seen;
    ok_json(
        &caller,
        json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "headers": headers,
            "body": String::from_utf8_lossy(&body),
            "user_id": caller.user_id,
        }),
    )
}

/// Answers after `?ms=` milliseconds (at most 30 s), for timeout tests.
async fn slow(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let caller = match authorize(&s, &headers, &method, &uri) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let ms = query
        .get("ms")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1000)
        .min(30_000);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ok_json(&caller, json!({"slept_ms": ms}))
}

#[derive(Deserialize)]
struct IssueRequest {
    user_id: u64,
    #[serde(default = "default_expires_in")]
    expires_in: i64,
    scopes: Option<Vec<String>>,
}

fn default_expires_in() -> i64 {
    3600
}

async fn admin_issue(State(s): State<Shared>, Json(req): Json<IssueRequest>) -> Response {
    if Sandbox::user(req.user_id).is_none() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unknown user_id; use 42, 43 or 44"})),
        )
            .into_response();
    }
    let (token, refresh) = s.issue(req.user_id, req.expires_in, req.scopes);
    Json(json!({
        "access_token": token,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": req.expires_in,
        "user": user_json(req.user_id),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ThrottleRequest {
    access_token: String,
    level: f64,
}

async fn admin_throttle(State(s): State<Shared>, Json(req): Json<ThrottleRequest>) -> Response {
    s.fill_bucket(&req.access_token, req.level);
    Json(json!({})).into_response()
}

async fn admin_stats(State(s): State<Shared>) -> Response {
    Json(json!(s.counters())).into_response()
}

#[derive(Deserialize)]
struct SettingsRequest {
    token_endpoint: Option<String>,
    token_delay_ms: Option<u64>,
    access_token_ttl: Option<i64>,
    redirect_domain: Option<String>,
    rotate_refresh: Option<bool>,
    token_answer: Option<String>,
    whoami_down: Option<bool>,
}

async fn admin_settings(State(s): State<Shared>, Json(req): Json<SettingsRequest>) -> Response {
    let mut inner = s.inner();
    let settings = &mut inner.settings;
    if let Some(v) = req.token_endpoint {
        settings.token_endpoint = v;
    }
    if let Some(v) = req.token_delay_ms {
        settings.token_delay_ms = v;
    }
    if let Some(v) = req.access_token_ttl {
        settings.access_token_ttl = v;
    }
    if let Some(v) = req.rotate_refresh {
        settings.rotate_refresh = v;
    }
    if req.redirect_domain.is_some() {
        settings.redirect_domain = req.redirect_domain;
    }
    if let Some(v) = req.token_answer {
        settings.token_answer = v;
    }
    if let Some(v) = req.whoami_down {
        settings.whoami_down = v;
    }
    Json(json!({})).into_response()
}

#[derive(Deserialize)]
struct TokenRequest {
    access_token: String,
}

/// Expires an access token now, as if its hour had passed.
async fn admin_expire(State(s): State<Shared>, Json(req): Json<TokenRequest>) -> Response {
    let mut inner = s.inner();
    match inner.access.get_mut(&req.access_token) {
        Some(issued) => {
            issued.expires_at = 0;
            Json(json!({})).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Deletes the whole grant behind an access token, as a user removing the app in Canvas.
async fn admin_revoke_grant(State(s): State<Shared>, Json(req): Json<TokenRequest>) -> Response {
    let mut inner = s.inner();
    match inner.access.remove(&req.access_token) {
        Some(issued) => {
            inner.grants.remove(&issued.refresh);
            Json(json!({})).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_canvas_patterns() {
        assert!(scope_allows(
            "url:GET|/api/v1/courses",
            &Method::GET,
            "/api/v1/courses"
        ));
        assert!(scope_allows(
            "url:GET|/api/v1/courses/:id",
            &Method::GET,
            "/api/v1/courses/7"
        ));
        assert!(!scope_allows(
            "url:GET|/api/v1/courses",
            &Method::POST,
            "/api/v1/courses"
        ));
        assert!(!scope_allows(
            "url:GET|/api/v1/courses",
            &Method::GET,
            "/api/v1/users/self"
        ));
    }

    #[test]
    fn link_header_is_canvas_shaped() {
        let q = HashMap::from([("include[]".to_string(), "term".to_string())]);
        let link = link_header("http://127.0.0.1:9", "/api/v1/courses", &q, 2, 10, 3);
        assert_eq!(
            link,
            "<http://127.0.0.1:9/api/v1/courses?include%5B%5D=term&page=2&per_page=10>; rel=\"current\",\
<http://127.0.0.1:9/api/v1/courses?include%5B%5D=term&page=3&per_page=10>; rel=\"next\",\
<http://127.0.0.1:9/api/v1/courses?include%5B%5D=term&page=1&per_page=10>; rel=\"prev\",\
<http://127.0.0.1:9/api/v1/courses?include%5B%5D=term&page=1&per_page=10>; rel=\"first\",\
<http://127.0.0.1:9/api/v1/courses?include%5B%5D=term&page=3&per_page=10>; rel=\"last\""
        );
    }
}
