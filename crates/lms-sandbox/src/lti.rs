//! LTI Advantage as Canvas serves it (the project's docs/lms-behaviour.md): the
//! `client_credentials` grant with a signed client assertion, checked for real (signature
//! against the developer key's JWKS, picked by `kid`; `aud` the token URL; `iat` under five
//! minutes old and at most 30 s ahead; `sub` the client id; a `jti` never seen before, which
//! Canvas itself does not check), and the services those tokens open: Assignment and Grade
//! Services line items and scores, and Names and Role Provisioning, with the IMS media
//! types. An expired service token gets Canvas's 401 without `WWW-Authenticate`.
//!
//! `/__sandbox/lti` sets where the developer key's public keys come from (`jwks_url`, as
//! Canvas's `public_jwk_url`, or `jwks` inline, as its `public_jwk`) and expires every
//! service token.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{json, Value};

use lms_proxy::crypto::random_token;
use lms_proxy::expiry::now_unix;

use crate::oauth_errors::oauth_error;
use crate::state::{Sandbox, ServiceToken, USERS};

type Shared = Arc<Sandbox>;
type Params = HashMap<String, String>;

const AGS_LINEITEM: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem";
const AGS_LINEITEM_READ: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
const AGS_SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
const SCORE_TYPE: &str = "application/vnd.ims.lis.v1.score+json";

/// How old an assertion may be, and how far ahead its clock may run (Canvas's rules).
const MAX_AGE_SECS: i64 = 300;
const MAX_AHEAD_SECS: i64 = 30;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/lti/courses/{course}/line_items", get(line_items))
        .route(
            "/api/lti/courses/{course}/line_items/{item}/scores",
            post(score),
        )
        .route(
            "/api/lti/courses/{course}/names_and_roles",
            get(memberships),
        )
        .route("/__sandbox/lti", get(admin_state).post(admin_settings))
}

/// The `client_credentials` grant. `Err` answers are Canvas's: 400 `invalid_request` or
/// 401 `invalid_client`.
pub async fn client_credentials(s: &Sandbox, p: &Params, ttl: i64) -> Response {
    let answer = match check_assertion(s, p).await {
        Ok(answer) => answer,
        Err(refusal) => {
            s.inner().counters.client_credentials_refused += 1;
            return *refusal;
        }
    };
    let (kid, scopes) = answer;
    let token = format!("sandbox-lti~{}", random_token());
    let mut inner = s.inner();
    inner.lti.last_kid = Some(kid);
    inner.lti.tokens.insert(
        token.clone(),
        ServiceToken {
            scopes: scopes.clone(),
            expires_at: now_unix() + ttl,
        },
    );
    Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scopes.join(" ")}))
        .into_response()
}

fn bad_request(description: &str) -> Box<Response> {
    Box::new(oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        description,
    ))
}

fn bad_client(description: &str) -> Box<Response> {
    Box::new(oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        description,
    ))
}

/// The assertion's `kid` and the scopes granted, or the refusal.
async fn check_assertion(s: &Sandbox, p: &Params) -> Result<(String, Vec<String>), Box<Response>> {
    if p.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err(bad_request("client_assertion_type must be jwt-bearer"));
    }
    let assertion = p.get("client_assertion").map(String::as_str).unwrap_or("");
    let header =
        decode_header(assertion).map_err(|_| bad_request("client_assertion is not a JWT"))?;
    if header.alg != Algorithm::RS256 {
        return Err(bad_request("the assertion must be signed RS256"));
    }
    let kid = header
        .kid
        .ok_or_else(|| bad_client("the assertion has no kid"))?;
    let jwks = developer_key_jwks(s).await?;
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| {
            keys.iter()
                .find(|k| k["kid"].as_str() == Some(kid.as_str()))
        })
        .ok_or_else(|| bad_client("no key of the developer key has this kid"))?;
    let key = DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or(""),
        jwk["e"].as_str().unwrap_or(""),
    )
    .map_err(|_| bad_client("the developer key's JWK is not an RSA key"))?;
    let token_url = format!("{}/login/oauth2/token", s.origin);
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_url.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "sub", "aud"]);
    validation.leeway = 0;
    let claims = decode::<Value>(assertion, &key, &validation)
        .map_err(|e| bad_client(&format!("the assertion was refused: {e}")))?
        .claims;
    if claims["sub"].as_str() != Some(s.client_id.as_str()) {
        return Err(bad_client("unknown client"));
    }
    let now = now_unix();
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if iat < now - MAX_AGE_SECS || iat > now + MAX_AHEAD_SECS {
        return Err(bad_request("iat is out of range"));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad_request("jti is required"))?;
    if !s.inner().lti.used_jti.insert(jti.to_string()) {
        return Err(bad_request("jti has been used"));
    }
    let scopes: Vec<String> = p
        .get("scope")
        .map(|s| {
            s.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if scopes.is_empty()
        || !scopes
            .iter()
            .all(|s| s.starts_with("https://purl.imsglobal.org/spec/lti-"))
    {
        return Err(Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "only LTI Advantage scopes may be asked for",
        )));
    }
    Ok((kid, scopes))
}

/// The developer key's public keys: inline, or fetched from its JWKS URL each time (as an
/// LMS whose cache just expired would), so a key added to the proxy is seen at once.
async fn developer_key_jwks(s: &Sandbox) -> Result<Value, Box<Response>> {
    let (inline, url) = {
        let inner = s.inner();
        (inner.lti.jwks.clone(), inner.lti.jwks_url.clone())
    };
    if let Some(jwks) = inline {
        return Ok(jwks);
    }
    let url = url.ok_or_else(|| bad_client("the developer key has no public key"))?;
    let fetched = async {
        reqwest::Client::new()
            .get(&url)
            .send()
            .await
            .ok()?
            .json::<Value>()
            .await
            .ok()
    };
    fetched
        .await
        .ok_or_else(|| bad_client("the developer key's JWKS URL did not answer"))
}

/// The service token on a request, if it is live and holds one of `scopes`. Canvas's
/// answers otherwise: 401, no `WWW-Authenticate`.
fn authorize(s: &Sandbox, headers: &HeaderMap, scopes: &[&str]) -> Result<(), Box<Response>> {
    let token = crate::state::bearer_of(headers);
    let unauthorized = |message: &str| {
        Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"errors": {"type": "unauthorized", "message": message}})),
            )
                .into_response(),
        )
    };
    let mut inner = s.inner();
    let Some(issued) = inner.lti.tokens.get(token) else {
        return Err(unauthorized("Invalid access token"));
    };
    if issued.expires_at <= now_unix() {
        return Err(unauthorized("Access token expired"));
    }
    if !issued.scopes.iter().any(|s| scopes.contains(&s.as_str())) {
        return Err(unauthorized("Insufficient scopes on access token."));
    }
    inner.counters.lti_calls += 1;
    Ok(())
}

fn typed(media_type: &'static str, body: Value) -> Response {
    ([("content-type", media_type)], body.to_string()).into_response()
}

async fn line_items(
    State(s): State<Shared>,
    Path(course): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = authorize(&s, &headers, &[AGS_LINEITEM, AGS_LINEITEM_READ]) {
        return *refusal;
    }
    let item = |id: u64, label: &str| {
        json!({"id": format!("{}/api/lti/courses/{course}/line_items/{id}", s.origin),
               "scoreMaximum": 10.0, "label": label, "resourceLinkId": format!("link-{id}")})
    };
    typed(
        "application/vnd.ims.lis.v2.lineitemcontainer+json",
        json!([item(1, "Quiz 1"), item(2, "Quiz 2")]),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Score {
    user_id: String,
    score_given: Option<f64>,
    score_maximum: Option<f64>,
    activity_progress: String,
    grading_progress: String,
    timestamp: String,
}

async fn score(
    State(s): State<Shared>,
    Path((course, item)): Path<(u64, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refusal) = authorize(&s, &headers, &[AGS_SCORE]) {
        return *refusal;
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with(SCORE_TYPE) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"errors": {"type": "unsupported_media_type", "message": format!("Content-Type must be {SCORE_TYPE}")}})),
        )
            .into_response();
    }
    let Ok(score) = serde_json::from_slice::<Score>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errors": {"type": "bad_request", "message": "not a score"}})),
        )
            .into_response();
    };
    let _ = (
        score.score_given,
        score.score_maximum,
        &score.activity_progress,
        &score.grading_progress,
        &score.timestamp,
    );
    s.inner().counters.scores += 1;
    Json(json!({"resultUrl": format!("{}/api/lti/courses/{course}/line_items/{item}/results/{}", s.origin, score.user_id)}))
        .into_response()
}

async fn memberships(
    State(s): State<Shared>,
    Path(course): Path<u64>,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = authorize(&s, &headers, &[NRPS]) {
        return *refusal;
    }
    let members: Vec<Value> = USERS
        .iter()
        .map(|u| {
            json!({"user_id": u.id.to_string(), "name": u.name, "status": "Active",
                   "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]})
        })
        .collect();
    typed(
        "application/vnd.ims.lti-nrps.v2.membershipcontainer+json",
        json!({
            "id": format!("{}/api/lti/courses/{course}/names_and_roles", s.origin),
            "context": {"id": course.to_string(), "title": format!("Course {course}")},
            "members": members,
        }),
    )
}

#[derive(Deserialize)]
struct LtiSettings {
    jwks_url: Option<String>,
    jwks: Option<Value>,
    #[serde(default)]
    expire_tokens: bool,
}

async fn admin_settings(State(s): State<Shared>, Json(req): Json<LtiSettings>) -> Response {
    let mut inner = s.inner();
    if req.jwks_url.is_some() {
        inner.lti.jwks_url = req.jwks_url;
    }
    if req.jwks.is_some() {
        inner.lti.jwks = req.jwks;
    }
    if req.expire_tokens {
        for token in inner.lti.tokens.values_mut() {
            token.expires_at = 0;
        }
    }
    Json(json!({})).into_response()
}

async fn admin_state(State(s): State<Shared>) -> Response {
    let inner = s.inner();
    Json(json!({"last_kid": inner.lti.last_kid, "live_tokens": inner.lti.tokens.values().filter(|t| t.expires_at > now_unix()).count()}))
        .into_response()
}
