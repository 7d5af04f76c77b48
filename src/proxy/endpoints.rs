//! The proxy's own paths, tried before any route: health, readiness, and the OAuth
//! endpoints for browsers and tools.

use http::request::Parts;
use serde_json::json;

use crate::app::App;
use crate::errors::ProxyError;
use crate::http::Answer;
use crate::oauth::{browser, tool_api};

pub async fn serve(app: &App, req: &Parts) -> Answer {
    let path = req.uri.path();
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    let result = if let Some(p) = segment("/oauth/start/").filter(|_| get) {
        Ok(browser::start(app, req, p).await)
    } else if let Some(p) = segment("/oauth/callback/").filter(|_| get) {
        Ok(browser::callback(app, req, p).await)
    } else if let Some(p) = segment("/api/oauth/status/").filter(|_| get) {
        tool_api::status(app, req, p).await
    } else if let Some(p) = segment("/api/oauth/access-token/").filter(|_| get) {
        tool_api::access_token(app, req, p).await
    } else if let Some(p) =
        segment("/api/oauth/token/").filter(|_| req.method == http::Method::DELETE)
    {
        tool_api::revoke(app, req, p).await
    } else {
        match (get, path) {
            (true, "/healthz") => Ok(Answer::json(200, &json!({"status": "ok"}))),
            (true, "/readyz") => Ok(readiness(app).await),
            _ => Err(ProxyError::UnknownRoute),
        }
    };
    result.unwrap_or_else(|e| e.answer())
}

async fn readiness(app: &App) -> Answer {
    match app.tokens().store().ping().await {
        Ok(()) => Answer::json(200, &json!({"status": "ready"})),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Answer::json(
                503,
                &json!({"status": "unavailable", "error": "store_unreachable"}),
            )
        }
    }
}
