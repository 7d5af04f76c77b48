//! The browser side of consent: `/oauth/start/{platform}` and `/oauth/callback/{platform}`.
//!
//! Until the state is proven (its cookie opens, it has not expired, it was never used), every
//! problem is a 400 page naming it and never a redirect: nothing about the request can be
//! trusted to say where to send the browser. After that, LMS errors go back to the tool's
//! `return_to` as `?lms_proxy_error=<code>`.

use std::sync::Arc;

use http::request::Parts;
use url::Url;

use super::return_to;
use super::state::{self, Flow, STATE_LIFETIME_SECS};
use crate::admission::request_host;
use crate::app::App;
use crate::config::{Platform, Tool};
use crate::crypto::{random_token, sha256};
use crate::expiry;
use crate::expiry::now_unix;
use crate::http::Answer;
use crate::identity::Origins;
use crate::tickets::Ticket;
use crate::token_endpoint::TokenEndpointError;
use crate::tokens::TokenRecord;
use crate::types::{PlatformId, TokenKey, UserKey};

fn bad(message: &str) -> Answer {
    Answer::html(400, "This sign-in link cannot be used", message)
}

pub fn query(req: &Parts, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn redirect_uri(app: &App, platform: &PlatformId) -> String {
    format!(
        "{}/oauth/callback/{platform}",
        app.config().server.public_url
    )
}

/// Who consents and where the browser goes afterwards, from a ticket or a tool JWT.
struct Subject {
    tool: Arc<Tool>,
    user: UserKey,
    lms_user_id: Option<String>,
    return_to: Option<Url>,
}

pub async fn start(app: &App, req: &Parts, platform_id: &str) -> Answer {
    // The state cookie and the redirect_uri live on public_url: a start reached through a
    // host route's origin moves there first.
    if let Some(elsewhere) = on_public_url(app, req) {
        return Answer::redirect(&elsewhere);
    }
    let Some(platform) = app
        .config()
        .platform(&PlatformId::new(platform_id))
        .cloned()
    else {
        return bad("There is no such platform on this proxy.");
    };
    let subject = match subject(app, req, &platform).await {
        Ok(s) => s,
        Err(answer) => return answer,
    };
    let state = random_token();
    let verifier = platform.pkce.then(random_token);
    let flow = Flow {
        platform: platform.id.clone(),
        tool: subject.tool.id.clone(),
        user: subject.user.clone(),
        lms_user_id: subject.lms_user_id,
        return_to: subject.return_to.map(|u| u.to_string()),
        verifier: verifier.clone(),
        exp: now_unix() + STATE_LIFETIME_SECS,
    };
    let mut authorize = platform.authorize_url.clone();
    {
        let mut q = authorize.query_pairs_mut();
        q.append_pair("client_id", &platform.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri(app, &platform.id))
            .append_pair("state", &state);
        if !platform.scopes.is_empty() {
            q.append_pair("scope", &platform.scopes.join(" "));
        }
        if let Some(verifier) = &verifier {
            q.append_pair("code_challenge", &state::code_challenge(verifier))
                .append_pair("code_challenge_method", "S256");
        }
    }
    let secure = app.config().server.public_url_is_https;
    Answer::redirect(authorize.as_str()).with_header(
        "set-cookie",
        state::set_cookie(
            &state::cookie_name(&state),
            &state::seal(app.crypto(), &state, &flow),
            secure,
        ),
    )
}

/// The same URL on `public_url`, when the request came through a host route's origin. Only
/// then: a load balancer that rewrites `Host` to an internal name must not loop browsers.
fn on_public_url(app: &App, req: &Parts) -> Option<String> {
    if app.routes().origin_of(request_host(req)) == Origins::PUBLIC_URL {
        return None;
    }
    let path_and_query = req.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!(
        "{}{path_and_query}",
        app.config().server.public_url
    ))
}

async fn subject(app: &App, req: &Parts, platform: &Platform) -> Result<Subject, Answer> {
    let now = now_unix();
    let subject = if let Some(signed) = query(req, "ticket") {
        let ticket = Ticket::open(app.crypto(), &signed, now).map_err(|e| bad(&e.to_string()))?;
        if ticket.platform != platform.id {
            return Err(bad("This link was made for another platform."));
        }
        let tool = app
            .config()
            .tool(&ticket.tool)
            .cloned()
            .ok_or_else(|| bad("The tool this link was made for is no longer configured."))?;
        let first_use = app
            .nonces()
            .use_once(&format!("ticket:{}", ticket.id), ticket.exp)
            .await
            .map_err(|e| store_trouble(&e))?;
        if !first_use {
            return Err(bad(
                "This link was used already. Go back to the tool and start again.",
            ));
        }
        let return_to = match &ticket.return_to {
            Some(r) => Some(
                return_to::allowed(&tool, r)
                    .ok_or_else(|| bad("The return address is not allowed for this tool."))?,
            ),
            None => None,
        };
        Subject {
            tool,
            user: ticket.user.clone(),
            lms_user_id: ticket.lms_user_id,
            return_to,
        }
    } else if let Some(jwt) = query(req, "token") {
        let identity = app
            .auth()
            .verify_jwt(&jwt, now)
            .map_err(|e| bad(&format!("The tool's credential was refused: {e}.")))?;
        if !identity.origins.allow(Origins::PUBLIC_URL) {
            return Err(bad(
                "The tool's credential was refused: its aud must name this proxy's public_url.",
            ));
        }
        let return_to = match query(req, "return_to") {
            Some(r) => Some(
                return_to::allowed(&identity.tool, &r)
                    .ok_or_else(|| bad("The return address is not allowed for this tool."))?,
            ),
            None => None,
        };
        Subject {
            tool: identity.tool,
            user: identity.user,
            lms_user_id: identity.lms_user_id,
            return_to,
        }
    } else {
        return Err(bad(
            "The link is missing its ticket. Go back to the tool and start again.",
        ));
    };
    if !subject.tool.may_use(&platform.id) {
        return Err(bad("This tool may not connect to this platform."));
    }
    Ok(subject)
}

fn store_trouble(e: &dyn std::fmt::Display) -> Answer {
    tracing::error!(error = %e, "token store unavailable during consent");
    Answer::html(
        503,
        "Try again in a moment",
        "The proxy cannot reach its token store right now.",
    )
    .with_header(
        "retry-after",
        crate::errors::STORE_RETRY_AFTER_SECS.to_string(),
    )
}

pub async fn callback(app: &App, req: &Parts, platform_id: &str) -> Answer {
    let Some(platform) = app
        .config()
        .platform(&PlatformId::new(platform_id))
        .cloned()
    else {
        return bad("There is no such platform on this proxy.");
    };
    let Some(state) = query(req, "state").filter(|s| !s.is_empty()) else {
        return bad("The answer from the LMS has no state.");
    };
    let name = state::cookie_name(&state);
    let cookie = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| state::find_cookie(h, &name).map(str::to_string));
    let Some(cookie) = cookie else {
        return bad("No sign-in was started in this browser for this answer (its cookie is missing). Start again from the tool, in the same browser.");
    };
    let Some(flow) = state::open(app.crypto(), &state, &cookie) else {
        return bad("The state does not match the sign-in started in this browser.");
    };
    if flow.exp <= now_unix() {
        return bad("The sign-in took longer than 10 minutes. Start again from the tool.");
    }
    if flow.platform != platform.id {
        return bad("The answer came back for another platform.");
    }
    let state_id = format!("state:{}", hex::encode(sha256(state.as_bytes())));
    match app.nonces().use_once(&state_id, flow.exp).await {
        Ok(true) => {}
        Ok(false) => return bad("This answer was used already."),
        Err(e) => return store_trouble(&e),
    }
    // The state is proven: from here on, the browser goes back to the tool.
    let secure = app.config().server.public_url_is_https;
    let clear = state::clear_cookie(&name, secure);
    let outcome = finish(app, req, &platform, &flow).await;
    if let Err(code) = &outcome {
        tracing::info!(platform = %platform.id, tool = %flow.tool, user = %flow.user, reason = %code,
            "consent not completed");
    }
    let Some(tool) = app.config().tool(&flow.tool) else {
        return bad("The tool is no longer configured.").with_header("set-cookie", clear);
    };
    let destination = flow
        .return_to
        .as_deref()
        .and_then(|r| Url::parse(r).ok())
        .or_else(|| tool.return_to.first().cloned());
    let answer = match (outcome, destination) {
        (Ok(()), Some(url)) => Answer::redirect(url.as_str()),
        (Ok(()), None) => Answer::html(
            200,
            "Connected",
            "Your account is connected. You can close this window and go back to the tool.",
        ),
        (Err(code), Some(url)) => {
            Answer::redirect(&return_to::with_param(&url, "lms_proxy_error", code.code()))
        }
        (Err(code), None) => Answer::html(
            400,
            "Not connected",
            &format!("The account was not connected ({code}). Go back to the tool and try again."),
        ),
    };
    answer.with_header("set-cookie", clear)
}

/// Why a consent that came back did not end in a stored grant: the `lms_proxy_error` code
/// the tool is sent back with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotConnected {
    /// The LMS's own `error` (the user denied, ...), reduced to OAuth's error-code characters.
    Lms(String),
    /// The LMS came back with no code.
    NoCode,
    /// The token endpoint refused the code, the client, or answered nothing usable.
    Exchange(&'static str),
    /// Someone other than the user the tool named consented (or who cannot be told).
    LmsUserMismatch,
    /// The grant could not be stored: the store is unreachable.
    Store,
}

impl NotConnected {
    fn code(&self) -> &str {
        match self {
            Self::Lms(code) => code,
            Self::NoCode => "invalid_request",
            Self::Exchange(code) => code,
            Self::LmsUserMismatch => "lms_user_mismatch",
            Self::Store => "store_unavailable",
        }
    }
}

impl std::fmt::Display for NotConnected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Exchanges the code and stores the grant, or says why not.
async fn finish(
    app: &App,
    req: &Parts,
    platform: &Platform,
    flow: &Flow,
) -> Result<(), NotConnected> {
    if let Some(error) = query(req, "error") {
        return Err(NotConnected::Lms(error_code(&error)));
    }
    let code = query(req, "code")
        .filter(|c| !c.is_empty())
        .ok_or(NotConnected::NoCode)?;
    let oauth = app.oauth();
    let grant = oauth
        .exchange_code(
            platform,
            &code,
            &redirect_uri(app, &platform.id),
            flow.verifier.as_deref(),
        )
        .await
        .map_err(|e| {
            tracing::warn!(platform = %platform.id, error = %e, "code exchange failed");
            NotConnected::Exchange(match e {
                TokenEndpointError::Refused(_) => "invalid_grant",
                TokenEndpointError::InvalidClient(_) => "invalid_client",
                TokenEndpointError::Unavailable(_) => "lms_unavailable",
                TokenEndpointError::InvalidResponse(_) => "invalid_token_response",
            })
        })?;
    let lms_user_id = match grant.lms_user_id.clone() {
        Some(id) => Some(id),
        None => oauth
            .whoami(platform, &grant.access_token)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(platform = %platform.id, error = %e, "could not learn who consented");
                None
            }),
    };
    // The tool named the LMS user it expects: anyone else's token, or one whose owner
    // cannot be told, is not stored (defeats account-linking CSRF).
    if let Some(expected) = &flow.lms_user_id {
        if lms_user_id.as_ref() != Some(expected) {
            tracing::warn!(platform = %platform.id, tool = %flow.tool, user = %flow.user,
                known = lms_user_id.is_some(),
                "consent given by a different (or unknown) LMS user than the tool named; not stored");
            if let Err(e) = oauth
                .revoke(platform, &grant.access_token, grant.refresh_token.as_ref())
                .await
            {
                tracing::warn!(error = %e, "could not revoke the mismatched token");
            }
            return Err(NotConnected::LmsUserMismatch);
        }
    }
    let now = now_unix();
    let key = TokenKey::new(platform.id.clone(), flow.tool.clone(), flow.user.clone());
    let record = TokenRecord {
        access_token: grant.access_token,
        refresh_token: grant.refresh_token,
        expires_at: grant.expires_in.map(|s| expiry::from_lifetime(now, s)),
        lms_user_id,
        obtained_at: now,
    };
    app.lifecycle().connect(key, record).await.map_err(|e| {
        tracing::error!(error = %e, "could not store a new grant");
        NotConnected::Store
    })?;
    tracing::info!(platform = %platform.id, tool = %flow.tool, user = %flow.user, "user connected");
    Ok(())
}

/// An LMS error code, reduced to the characters OAuth error codes use.
fn error_code(error: &str) -> String {
    let code: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if code.is_empty() {
        "access_denied".into()
    } else {
        code
    }
}
