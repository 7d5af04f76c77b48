//! The slice of Brightspace's Valence API the sandbox answers (`--kind brightspace`), as the
//! project's docs/lms-behaviour.md describes it: `whoami`, a classlist paged as an
//! ObjectListPage whose `Next` is an absolute URL on the LMS, 401 with an RFC 7807 body and
//! no `WWW-Authenticate` for a bad token, and 429 with `Retry-After` over the rate limit.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::{Sandbox, TokenProblem};

type Shared = Arc<Sandbox>;

/// Members of every org unit's classlist: enough for three pages of ten.
pub const CLASSLIST_SIZE: u64 = 25;
const PAGE_SIZE: u64 = 10;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/d2l/api/lp/{version}/users/whoami", get(whoami))
        .route(
            "/d2l/api/le/{version}/{org_unit}/classlist/paged/",
            get(classlist),
        )
}

/// The caller's LMS user id, or Brightspace's refusal.
fn authorize(state: &Sandbox, headers: &HeaderMap) -> Result<u64, Box<Response>> {
    let token = crate::state::bearer_of(headers);
    let issued = match state.check(token) {
        Ok(issued) => issued,
        Err(TokenProblem::Invalid | TokenProblem::Expired) => return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                [("content-type", "application/problem+json")],
                Json(json!({
                    "type": "http://docs.valence.desire2learn.com/res/apiprop.html#invalid-token",
                    "title": "Invalid token",
                    "status": 401,
                    "detail": "Provided token was either expired or invalid.",
                })),
            )
                .into_response(),
        )),
    };
    let throttle = state.throttle(token);
    if !throttle.allowed {
        let mut response = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
        let headers = response.headers_mut();
        headers.insert("retry-after", HeaderValue::from_static("30"));
        headers.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        headers.insert("x-rate-limit-reset", HeaderValue::from_static("30"));
        return Err(Box::new(response));
    }
    Ok(issued.user_id)
}

fn rate_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-rate-limit-remaining", HeaderValue::from_static("49999"));
    headers.insert("x-rate-limit-reset", HeaderValue::from_static("60"));
    headers.insert("x-request-cost", HeaderValue::from_static("1"));
    response
}

async fn whoami(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let user_id = match authorize(&s, &headers) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let name = Sandbox::user(user_id).map_or("Unknown User", |u| u.name);
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    rate_headers(
        Json(json!({
            "Identifier": user_id.to_string(),
            "FirstName": first,
            "LastName": last,
            "UniqueName": first.to_lowercase(),
            "ProfileIdentifier": format!("profile-{user_id}"),
            "Pronouns": null,
        }))
        .into_response(),
    )
}

/// An ObjectListPage: `Objects`, and `Next` (absolute, on the LMS) while there is more.
async fn classlist(
    State(s): State<Shared>,
    Path((version, org_unit)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(&s, &headers) {
        return *refused;
    }
    let start: u64 = query
        .get("bookmark")
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    let end = (start + PAGE_SIZE).min(CLASSLIST_SIZE);
    let objects: Vec<Value> = (start..end)
        .map(|i| {
            json!({
                "Identifier": (1000 + i).to_string(),
                "DisplayName": format!("Student {i}"),
                "OrgUnitId": org_unit,
            })
        })
        .collect();
    let next = (end < CLASSLIST_SIZE).then(|| {
        format!(
            "{}/d2l/api/le/{version}/{org_unit}/classlist/paged/?bookmark={end}",
            s.origin
        )
    });
    rate_headers(Json(json!({"Objects": objects, "Next": next})).into_response())
}
