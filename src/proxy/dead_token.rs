//! An LMS answer that says the access token is dead (expired early, killed by a refresh
//! elsewhere, revoked; for Canvas a 401 *with* `WWW-Authenticate`, the provider decides) makes
//! the proxy refresh once and replay the request once; any other 401 (scopes, permissions) is
//! the LMS's answer to pass on.
//!
//! Pingora has no hook for "retry with a changed request", so the filter returns a retryable
//! error, `error_while_proxy` lets it through, and `upstream_peer` refreshes before the
//! second attempt.

use pingora::http::ResponseHeader;

use super::RequestCtx;
use crate::admission::{authorization_required, service_refusal, token_or_refusal, Holder};
use crate::app::App;
use crate::errors::ProxyError;
use crate::expiry::now_unix;
use crate::provider::Provider;

/// Whether the LMS's answer says the access token is dead, as the platform's kind says it.
/// On a service-token route any 401 does: Canvas's LTI services answer an expired token
/// without `WWW-Authenticate`, and no scope or permission answer applies to them.
pub fn is_dead_token(provider: &dyn Provider, service: bool, response: &ResponseHeader) -> bool {
    response.status == http::StatusCode::UNAUTHORIZED
        && (service
            || provider.is_dead_token(
                response.status.as_u16(),
                response
                    .headers
                    .contains_key(http::header::WWW_AUTHENTICATE),
            ))
}

/// Refreshes the rejected token and puts the new one in `ctx`, or says what to answer.
pub async fn refresh(app: &App, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
    let Some(admitted) = ctx.admitted.as_mut() else {
        return Err(ProxyError::Internal);
    };
    let platform = &admitted.route.platform;
    admitted.token = match &admitted.holder {
        Holder::User { identity, key } => {
            tracing::info!(platform = %key.platform, tool = %key.tool, user = %key.user,
                "the LMS rejected the access token; refreshing and replaying once");
            let outcome = app
                .lifecycle()
                .refresh_rejected(key, platform, &admitted.token.access_token)
                .await;
            token_or_refusal(app, outcome, identity, &platform.id, now_unix())?
        }
        Holder::Service { tool, scopes } => {
            tracing::info!(platform = %platform.id, tool = %tool.id,
                "the LMS rejected the LTI service token; asking for a new one and replaying once");
            app.service_tokens()
                .renew_rejected(platform, scopes, &admitted.token.access_token)
                .await
                .map_err(service_refusal)?
        }
    };
    Ok(())
}

/// The refreshed token was rejected too. The grant is kept: the LMS did not refuse its
/// refresh token, and the likely cause is another process's late refresh that killed the
/// token just issued (Canvas does that). The next request refreshes again.
pub fn rejected_after_refresh(ctx: &RequestCtx) -> ProxyError {
    if let Some(admitted) = ctx.admitted.as_ref() {
        tracing::warn!(platform = %admitted.route.platform.id,
            "the LMS rejected a token just refreshed; keeping the grant, the next request refreshes again");
    }
    ProxyError::LmsUnavailable {
        retry_after_secs: 1,
    }
}

/// The request body was past the replay buffer: refresh anyway so the tool's next try
/// works, and answer this request as the contract says for a rejected token.
pub async fn not_replayable(app: &App, ctx: &mut RequestCtx) -> ProxyError {
    if let Err(e) = refresh(app, ctx).await {
        return e;
    }
    match ctx
        .admitted
        .as_ref()
        .map(|a| (&a.holder, &a.route.platform.id))
    {
        Some((Holder::User { identity, .. }, platform)) => {
            authorization_required(app, identity, platform, now_unix())
        }
        // The new service token is in place; the tool's retry will carry it.
        Some((Holder::Service { .. }, _)) => ProxyError::LmsUnavailable {
            retry_after_secs: 1,
        },
        None => ProxyError::Internal,
    }
}
