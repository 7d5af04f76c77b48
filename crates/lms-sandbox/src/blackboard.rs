//! The slice of Blackboard Learn's REST API the sandbox answers (`--kind blackboard`), as the
//! project's docs/lms-behaviour.md describes it: OAuth under `/learn/api/public/v1/oauth2/`,
//! `users/me`, courses paged with a root-relative `paging.nextPage`, 401 "Bearer token is
//! invalid", and 429 with `Retry-After` over the rate limit.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::oauth;
use crate::state::{blackboard_uuid, Sandbox, COURSE_COUNT};

type Shared = Arc<Sandbox>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/learn/api/public/v1/oauth2/authorizationcode",
            get(oauth::authorize),
        )
        .route("/learn/api/public/v1/oauth2/token", post(oauth::token))
        .route("/learn/api/public/v1/users/me", get(me))
        .route("/learn/api/public/v3/courses", get(courses))
}

fn authorize(state: &Sandbox, headers: &HeaderMap) -> Result<u64, Box<Response>> {
    let token = crate::state::bearer_of(headers);
    let Ok(issued) = state.check(token) else {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"status": 401, "message": "Bearer token is invalid"})),
            )
                .into_response(),
        ));
    };
    if !state.throttle(token).allowed {
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"status": 429, "message": "Too many requests"})),
        )
            .into_response();
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from_static("30"));
        return Err(Box::new(response));
    }
    Ok(issued.user_id)
}

async fn me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let user_id = match authorize(&s, &headers) {
        Ok(id) => id,
        Err(refused) => return *refused,
    };
    let name = Sandbox::user(user_id).map_or("Unknown User", |u| u.name);
    let (given, family) = name.split_once(' ').unwrap_or((name, ""));
    Json(json!({
        "id": format!("_{user_id}_1"),
        "uuid": blackboard_uuid(user_id),
        "userName": given.to_lowercase(),
        "name": {"given": given, "family": family},
    }))
    .into_response()
}

/// `results`, and `paging.nextPage` (root-relative, absent on the last page).
async fn courses(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Err(refused) = authorize(&s, &headers) {
        return *refused;
    }
    let number = |name: &str, default: u64| {
        query
            .get(name)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let limit = number("limit", 10).clamp(1, 100);
    let offset = number("offset", 0);
    let end = (offset + limit).min(COURSE_COUNT);
    let results: Vec<Value> = (offset..end)
        .map(|i| json!({"id": format!("_{}_1", 100 + i), "courseId": format!("COURSE-{i}"), "name": format!("Course {i}")}))
        .collect();
    let mut body = json!({"results": results});
    if end < COURSE_COUNT {
        body["paging"] = json!({
            "nextPage": format!("/learn/api/public/v3/courses?offset={end}&limit={limit}")
        });
    }
    Json(body).into_response()
}
