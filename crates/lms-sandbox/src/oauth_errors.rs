//! The OAuth error answer, Canvas-shaped, for every endpoint of the sandbox's OAuth side
//! (authorization codes, refresh, LTI client credentials).

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Canvas OAuth 2.0"),
        );
    }
    response
}
