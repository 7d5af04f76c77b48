//! The proxy's own endpoints, run before any route: `own_paths` says which one a request
//! is for, this module hands it to its handler.

use http::request::Parts;
use serde_json::json;

use crate::app::App;
use crate::errors::ProxyError;
use crate::http::Answer;
use crate::identity::Identity;
use crate::oauth::{browser, tool_api};
use crate::own_paths::{self, Endpoint};

/// The answer, or the error to answer with; `who` learns the tool and user when the
/// endpoint authenticates one, for the access line.
pub async fn serve(
    app: &App,
    req: &Parts,
    who: &mut Option<Identity>,
) -> Result<Answer, ProxyError> {
    let Some((endpoint, platform)) = own_paths::find(&req.method, req.uri.path()) else {
        return Err(ProxyError::UnknownRoute);
    };
    match endpoint {
        Endpoint::OAuthStart => Ok(browser::start(app, req, platform).await),
        Endpoint::OAuthCallback => Ok(browser::callback(app, req, platform).await),
        Endpoint::Status => tool_api::status(app, req, platform, who).await,
        Endpoint::AccessToken => tool_api::access_token(app, req, platform, who).await,
        Endpoint::Revoke => tool_api::revoke(app, req, platform, who).await,
        Endpoint::Health => Ok(Answer::json(200, &json!({"status": "ok"}))),
        Endpoint::Ready => Ok(readiness(app).await),
        Endpoint::Jwks => jwks(app),
    }
}

/// The JWKS an LMS developer key points at. Public and cacheable: an LMS may keep it a
/// while, which is why a new key is added first and the old one removed only later.
fn jwks(app: &App) -> Result<Answer, ProxyError> {
    let keys = app
        .config()
        .lti_keys
        .as_ref()
        .ok_or(ProxyError::UnknownRoute)?;
    let mut answer = Answer::json(200, &keys.jwks());
    answer.headers.retain(|(name, _)| *name != "cache-control");
    Ok(answer.with_header("cache-control", "public, max-age=300"))
}

async fn readiness(app: &App) -> Answer {
    match app.readiness().ping().await {
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
