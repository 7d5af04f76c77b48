//! What a tool may ask about its users' grants: `/api/oauth/status`, `/api/oauth/access-token`
//! and `DELETE /api/oauth/token`. Authenticated exactly like proxied requests.

use std::sync::Arc;

use http::request::Parts;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::browser::query;
use super::return_to;
use crate::admission::{grant_key, request_host, store_unavailable, token_or_refusal};
use crate::app::App;
use crate::config::Platform;
use crate::errors::ProxyError;
use crate::expiry::now_unix;
use crate::http::Answer;
use crate::identity::{CredentialError, Identity};
use crate::tickets::Ticket;
use crate::types::{PlatformId, TokenKey};

struct Caller {
    identity: Identity,
    platform: Arc<Platform>,
    key: TokenKey,
}

/// The authenticated tool and user; `who` keeps them for the request's access line.
fn caller(
    app: &App,
    req: &Parts,
    platform_id: &str,
    now: i64,
    who: &mut Option<Identity>,
) -> Result<Caller, ProxyError> {
    let identity = app.auth().authenticate_headers(&req.headers, now)?;
    *who = Some(identity.clone());
    if !identity
        .origins
        .allow(app.routes().origin_of(request_host(req)))
    {
        return Err(CredentialError::WrongAudience.into());
    }
    let platform = app
        .config()
        .platform(&PlatformId::new(platform_id))
        .cloned()
        .ok_or(ProxyError::UnknownRoute)?;
    let key = grant_key(&identity, &platform.id)?;
    Ok(Caller {
        identity,
        platform,
        key,
    })
}

fn rfc3339(unix: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::from)
}

pub async fn status(
    app: &App,
    req: &Parts,
    platform_id: &str,
    who: &mut Option<Identity>,
) -> Result<Answer, ProxyError> {
    let now = now_unix();
    let c = caller(app, req, platform_id, now, who)?;
    let return_to = match query(req, "return_to") {
        Some(r) => Some(
            return_to::allowed(&c.identity.tool, &r)
                .ok_or_else(|| {
                    ProxyError::BadRequest(
                        "return_to is not under one of this tool's return_to prefixes".into(),
                    )
                })?
                .to_string(),
        ),
        None => None,
    };
    let record = app
        .lifecycle()
        .lookup(&c.key)
        .await
        .map_err(|e| store_unavailable(&e))?
        .record;
    let ticket = Ticket::new(
        &c.platform.id,
        &c.identity.tool.id,
        &c.identity.user,
        c.identity.lms_user_id.as_deref(),
        return_to.as_deref(),
        now,
    );
    let body = json!({
        "connected": record.is_some(),
        "lms_user_id": record.as_ref().and_then(|r| r.lms_user_id.clone()),
        "expires_at": record.as_ref().and_then(|r| r.expires_at).map_or(Value::Null, rfc3339),
        "authorize_url": ticket.start_url(app.crypto(), &app.config().server.public_url),
    });
    Ok(Answer::json(200, &body))
}

pub async fn access_token(
    app: &App,
    req: &Parts,
    platform_id: &str,
    who: &mut Option<Identity>,
) -> Result<Answer, ProxyError> {
    let now = now_unix();
    let c = caller(app, req, platform_id, now, who)?;
    if !c.identity.tool.export_tokens {
        return Err(ProxyError::Forbidden(format!(
            "tool {} may not read LMS tokens (export_tokens is off)",
            c.identity.tool.id
        )));
    }
    let outcome = app.lifecycle().usable(&c.key, &c.platform, now).await;
    let record = token_or_refusal(app, outcome, &c.identity, &c.platform.id, now)?;
    let expires_in = record.expires_at.map(|t| (t - now_unix()).max(0));
    tracing::info!(platform = %c.key.platform, tool = %c.key.tool, user = %c.key.user, "LMS token exported");
    Ok(Answer::json(
        200,
        &json!({
            "token_type": "Bearer",
            "access_token": record.access_token.expose(),
            "expires_in": expires_in,
        }),
    ))
}

/// Deletes the grant here, then revokes it at the LMS, whatever the LMS says. Idempotent:
/// 204 always, or 503 `store_unavailable` with nothing changed.
pub async fn revoke(
    app: &App,
    req: &Parts,
    platform_id: &str,
    who: &mut Option<Identity>,
) -> Result<Answer, ProxyError> {
    let c = caller(app, req, platform_id, now_unix(), who)?;
    // Deleted here first: with the store away the answer is 503 and the LMS is not asked,
    // so the user is never left revoked at the LMS but still connected here.
    let taken = app
        .lifecycle()
        .take(&c.key)
        .await
        .map_err(|e| store_unavailable(&e))?;
    if let Some(record) = taken {
        let at_lms = app
            .oauth()
            .revoke(
                &c.platform,
                &record.access_token,
                record.refresh_token.as_ref(),
            )
            .await;
        match at_lms {
            Ok(true) => {
                tracing::info!(platform = %c.key.platform, tool = %c.key.tool, user = %c.key.user,
                    "grant revoked at the LMS and deleted here")
            }
            Ok(false) => {
                tracing::info!(platform = %c.key.platform, tool = %c.key.tool, user = %c.key.user,
                    "grant deleted here; this LMS has no revocation endpoint, so its tokens live until they expire")
            }
            Err(e) => {
                tracing::warn!(platform = %c.key.platform, tool = %c.key.tool, user = %c.key.user, error = %e,
                    "revocation at the LMS failed; the grant is deleted here all the same")
            }
        }
    }
    Ok(Answer {
        status: 204,
        headers: vec![("cache-control", "no-store".into())],
        body: bytes::Bytes::new(),
    })
}
