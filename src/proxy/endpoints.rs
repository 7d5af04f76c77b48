//! The proxy's own paths: health and readiness now; the OAuth endpoints join them here.

use pingora::http::RequestHeader;
use serde_json::json;

use crate::app::App;
use crate::errors::ProxyError;
use crate::http::Answer;

pub async fn serve(app: &App, req: &RequestHeader) -> Answer {
    match (req.method.as_str(), req.uri.path()) {
        ("GET" | "HEAD", "/healthz") => Answer::json(200, &json!({"status": "ok"})),
        ("GET" | "HEAD", "/readyz") => match app.tokens.store().ping().await {
            Ok(()) => Answer::json(200, &json!({"status": "ready"})),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                Answer::json(
                    503,
                    &json!({"status": "unavailable", "error": "store_unreachable"}),
                )
            }
        },
        _ => ProxyError::UnknownRoute.answer(),
    }
}
