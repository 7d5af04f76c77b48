//! The proxy's own paths, tried before any route: health, readiness, and the OAuth
//! endpoints for browsers and tools.

use http::request::Parts;
use serde_json::json;

use crate::app::App;
use crate::errors::ProxyError;
use crate::http::Answer;
use crate::identity::Identity;
use crate::oauth::{browser, tool_api};

/// The answer, or the error to answer with; `who` learns the tool and user when the
/// endpoint authenticates one, for the access line.
pub async fn serve(
    app: &App,
    req: &Parts,
    who: &mut Option<Identity>,
) -> Result<Answer, ProxyError> {
    let path = req.uri.path();
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let segment = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
    };
    if let Some(p) = segment("/oauth/start/").filter(|_| get) {
        Ok(browser::start(app, req, p).await)
    } else if let Some(p) = segment("/oauth/callback/").filter(|_| get) {
        Ok(browser::callback(app, req, p).await)
    } else if let Some(p) = segment("/api/oauth/status/").filter(|_| get) {
        tool_api::status(app, req, p, who).await
    } else if let Some(p) = segment("/api/oauth/access-token/").filter(|_| get) {
        tool_api::access_token(app, req, p, who).await
    } else if let Some(p) =
        segment("/api/oauth/token/").filter(|_| req.method == http::Method::DELETE)
    {
        tool_api::revoke(app, req, p, who).await
    } else {
        match (get, path) {
            (true, "/healthz") => Ok(Answer::json(200, &json!({"status": "ok"}))),
            (true, "/readyz") => Ok(readiness(app).await),
            _ => Err(ProxyError::UnknownRoute),
        }
    }
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
