//! The LMS token endpoint, from the proxy's side: code exchange, refresh, revocation.
//!
//! Answers are sorted into what the caller must do: use the new token, forget the user's
//! grant (`Refused`), blame the operator's client credentials (`InvalidClient`), or wait
//! (`Unavailable`). The platform's provider says what differs per LMS (Canvas answers a revoked refresh
//! token with `invalid_request`, not `invalid_grant`).

use std::collections::HashMap;

use serde::Deserialize;

use crate::config::{Config, Platform};
use crate::lms_http::{self, redact, ClientSettings};
use crate::provider::{ClientAuth, Provider, Revocation};
use crate::types::{is_lms_user_id_shape, is_token_shape, AccessToken, PlatformId, RefreshToken};

/// What a token endpoint gave back.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub expires_in: Option<i64>,
    /// The LMS user the token acts for, when the LMS says (Canvas `user.id`, Blackboard `user_id`).
    pub lms_user_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenEndpointError {
    /// The grant is gone: revoked, expired or never valid. The user must consent again.
    #[error("the LMS refused the grant: {0}")]
    Refused(String),
    /// The operator's client id or secret is wrong; users' grants are not at fault.
    #[error("the LMS refused the proxy's client credentials: {0}")]
    InvalidClient(String),
    /// Unreachable, timed out, 5xx, or an answer we cannot read.
    #[error("the LMS token endpoint is unavailable: {0}")]
    Unavailable(String),
    /// A 200 whose token is not one the proxy can use (not an RFC 6750 `b64token`, or an
    /// unreadable user id). Treated as an LMS failure; the text never repeats the value.
    #[error("the LMS token endpoint answered an unusable token: {0}")]
    InvalidResponse(&'static str),
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    user: Option<UserBody>,
    user_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct UserBody {
    id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

fn id_string(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The one token-endpoint call the lifecycle makes, as a port: the lifecycle's tests count
/// and script these calls without an LMS.
#[async_trait::async_trait]
pub trait RefreshGrant: Send + Sync + 'static {
    async fn refresh(
        &self,
        platform: &Platform,
        refresh_token: &RefreshToken,
    ) -> Result<Grant, TokenEndpointError>;
}

/// The LTI service-token grant, as a port for the same reason.
#[async_trait::async_trait]
pub trait ClientCredentialsGrant: Send + Sync + 'static {
    async fn client_credentials(
        &self,
        platform: &Platform,
        token_url: &url::Url,
        assertion: &str,
        scope: &str,
    ) -> Result<Grant, TokenEndpointError>;
}

#[async_trait::async_trait]
impl ClientCredentialsGrant for OAuthClients {
    async fn client_credentials(
        &self,
        platform: &Platform,
        token_url: &url::Url,
        assertion: &str,
        scope: &str,
    ) -> Result<Grant, TokenEndpointError> {
        OAuthClients::client_credentials(self, platform, token_url, assertion, scope).await
    }
}

#[async_trait::async_trait]
impl RefreshGrant for OAuthClients {
    async fn refresh(
        &self,
        platform: &Platform,
        refresh_token: &RefreshToken,
    ) -> Result<Grant, TokenEndpointError> {
        OAuthClients::refresh(self, platform, refresh_token).await
    }
}

/// One HTTP client per platform, each trusting what the platform's `ca_file` says.
pub struct OAuthClients {
    clients: HashMap<PlatformId, reqwest::Client>,
}

impl OAuthClients {
    pub fn new(config: &Config) -> Result<Self, String> {
        let mut clients = HashMap::new();
        for p in &config.platforms {
            clients.insert(p.id.clone(), build_client(p)?);
        }
        Ok(Self { clients })
    }

    fn client(&self, platform: &Platform) -> Result<&reqwest::Client, TokenEndpointError> {
        self.clients.get(&platform.id).ok_or_else(|| {
            TokenEndpointError::Unavailable(format!("no client for {}", platform.id))
        })
    }

    pub async fn exchange_code(
        &self,
        platform: &Platform,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<Grant, TokenEndpointError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = code_verifier {
            form.push(("code_verifier", verifier));
        }
        self.token_request(platform, form).await
    }

    pub async fn refresh(
        &self,
        platform: &Platform,
        refresh_token: &RefreshToken,
    ) -> Result<Grant, TokenEndpointError> {
        let form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        self.token_request(platform, form).await
    }

    /// Revokes at the LMS as its provider says: Canvas's `DELETE` with the access token as
    /// bearer, or an RFC 7009 POST with the token in the form. `Ok(false)`: the LMS has no
    /// revocation endpoint (Brightspace, Blackboard), so only the local grant goes.
    pub async fn revoke(
        &self,
        platform: &Platform,
        access: &AccessToken,
        refresh: Option<&RefreshToken>,
    ) -> Result<bool, TokenEndpointError> {
        let Some(url) = &platform.revoke_url else {
            return Ok(false);
        };
        let client = self.client(platform)?;
        let request = match platform.provider.revocation() {
            Revocation::DeleteWithBearer => {
                client.delete(url.as_str()).bearer_auth(access.expose())
            }
            Revocation::Rfc7009 => {
                // Revoking the refresh token ends the whole grant (RFC 7009 section 2.1).
                let (token, hint) = match refresh {
                    Some(r) => (r.expose(), "refresh_token"),
                    None => (access.expose(), "access_token"),
                };
                let mut form = vec![("token", token), ("token_type_hint", hint)];
                let request = client_authenticated(client.post(url.as_str()), platform, &mut form);
                request.form(&form)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| TokenEndpointError::Unavailable(redact(e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(true)
        } else if status.is_server_error() {
            Err(TokenEndpointError::Unavailable(format!(
                "revoke answered {status}"
            )))
        } else {
            Err(TokenEndpointError::Refused(format!(
                "revoke answered {status}"
            )))
        }
    }

    /// Who the token belongs to, asked of the LMS itself (the kind's who-am-I call), for a
    /// token answer that named no user. `Ok(None)` when the kind has no such call.
    pub async fn whoami(
        &self,
        platform: &Platform,
        access: &AccessToken,
    ) -> Result<Option<String>, TokenEndpointError> {
        let Some(whoami) = &platform.who_consented else {
            return Ok(None);
        };
        let field = whoami.field.as_str();
        let response = self
            .client(platform)?
            .get(whoami.url.as_str())
            .bearer_auth(access.expose())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| TokenEndpointError::Unavailable(redact(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TokenEndpointError::Unavailable(format!(
                "who-am-I answered {status}"
            )));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| TokenEndpointError::Unavailable("who-am-I answered no JSON".into()))?;
        match body.get(field).and_then(id_string) {
            Some(id) if is_lms_user_id_shape(&id) => Ok(Some(id)),
            _ => Err(TokenEndpointError::InvalidResponse(
                "who-am-I named no usable user id",
            )),
        }
    }

    async fn token_request(
        &self,
        platform: &Platform,
        mut form: Vec<(&str, &str)>,
    ) -> Result<Grant, TokenEndpointError> {
        let client = self.client(platform)?;
        let request = client_authenticated(
            client.post(platform.token_url.as_str()),
            platform,
            &mut form,
        );
        self.send_token_request(platform, request, &form).await
    }

    /// The LTI `client_credentials` grant: the signed assertion is the client's
    /// authentication, so no secret goes with it.
    pub async fn client_credentials(
        &self,
        platform: &Platform,
        token_url: &url::Url,
        assertion: &str,
        scope: &str,
    ) -> Result<Grant, TokenEndpointError> {
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ];
        let request = self.client(platform)?.post(token_url.as_str());
        self.send_token_request(platform, request, &form).await
    }

    async fn send_token_request(
        &self,
        platform: &Platform,
        request: reqwest::RequestBuilder,
        form: &[(&str, &str)],
    ) -> Result<Grant, TokenEndpointError> {
        let response = request
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .map_err(|e| TokenEndpointError::Unavailable(redact(e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| TokenEndpointError::Unavailable(redact(e)))?;
        if status.is_server_error() {
            return Err(TokenEndpointError::Unavailable(format!(
                "token endpoint answered {status}"
            )));
        }
        if !status.is_success() {
            return Err(classify_error(platform.provider, status.as_u16(), &bytes));
        }
        let body: TokenBody = serde_json::from_slice(&bytes).map_err(|_| {
            TokenEndpointError::Unavailable(
                "token endpoint answered something other than JSON".into(),
            )
        })?;
        let access = body.access_token.filter(|t| !t.is_empty()).ok_or_else(|| {
            TokenEndpointError::Unavailable("token answer has no access_token".into())
        })?;
        if !is_token_shape(&access) {
            return Err(TokenEndpointError::InvalidResponse(
                "access_token is not an RFC 6750 token",
            ));
        }
        let refresh_token = body.refresh_token.filter(|t| !t.is_empty());
        if refresh_token.as_deref().is_some_and(|t| !is_token_shape(t)) {
            return Err(TokenEndpointError::InvalidResponse(
                "refresh_token is not an RFC 6750 token",
            ));
        }
        let expires_in = body.expires_in.as_ref().and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        });
        let lms_user_id = body
            .user
            .and_then(|u| u.id)
            .as_ref()
            .and_then(id_string)
            .or_else(|| body.user_id.as_ref().and_then(id_string));
        if lms_user_id
            .as_deref()
            .is_some_and(|id| !is_lms_user_id_shape(id))
        {
            return Err(TokenEndpointError::InvalidResponse(
                "the user id is not 1-255 visible ASCII characters",
            ));
        }
        Ok(Grant {
            access_token: AccessToken::new(access),
            refresh_token: refresh_token.map(RefreshToken::new),
            expires_in: expires_in.filter(|&s| s > 0),
            lms_user_id,
        })
    }
}

/// The platform's client authentication, on the request or in its form.
fn client_authenticated<'a>(
    request: reqwest::RequestBuilder,
    platform: &'a Platform,
    form: &mut Vec<(&str, &'a str)>,
) -> reqwest::RequestBuilder {
    match platform.client_auth {
        ClientAuth::Basic => {
            request.basic_auth(&platform.client_id, Some(platform.client_secret.expose()))
        }
        ClientAuth::Form => {
            form.push(("client_id", &platform.client_id));
            form.push(("client_secret", platform.client_secret.expose()));
            request
        }
    }
}

fn classify_error(provider: &dyn Provider, status: u16, body: &[u8]) -> TokenEndpointError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let error = parsed
        .as_ref()
        .and_then(|b| b.error.clone())
        .unwrap_or_default();
    let description = parsed.and_then(|b| b.error_description).unwrap_or_default();
    let summary = format!("{status} {error} {description}").trim().to_string();
    match error.as_str() {
        "invalid_client" | "unauthorized_client" => TokenEndpointError::InvalidClient(summary),
        // Each LMS says "this grant is gone" its own way (Canvas: `invalid_request`).
        _ if provider.refuses_grant(&error, &description) => TokenEndpointError::Refused(summary),
        _ if status == 401 => TokenEndpointError::InvalidClient(summary),
        _ => TokenEndpointError::Unavailable(summary),
    }
}

fn build_client(platform: &Platform) -> Result<reqwest::Client, String> {
    lms_http::client(ClientSettings {
        ca_certs: platform.ca_certs.as_deref(),
        connect_timeout: platform.connect_timeout,
        read_timeout: platform.read_timeout,
    })
    .map_err(|e| format!("platforms {}: {e}", platform.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canvas() -> &'static dyn Provider {
        crate::provider::for_kind("canvas").unwrap()
    }

    #[test]
    fn canvas_errors_are_sorted_as_lms_facts_says() {
        let refused = |s: u16, b: &str| {
            matches!(
                classify_error(canvas(), s, b.as_bytes()),
                TokenEndpointError::Refused(_)
            )
        };
        let client = |s: u16, b: &str| {
            matches!(
                classify_error(canvas(), s, b.as_bytes()),
                TokenEndpointError::InvalidClient(_)
            )
        };
        assert!(refused(
            400,
            r#"{"error":"invalid_grant","error_description":"authorization_code not found"}"#
        ));
        assert!(refused(
            400,
            r#"{"error":"invalid_request","error_description":"refresh_token not found"}"#
        ));
        assert!(client(
            401,
            r#"{"error":"invalid_client","error_description":"invalid client"}"#
        ));
        assert!(client(401, "not json"));
        assert!(matches!(
            classify_error(canvas(), 400, br#"{"error":"unsupported_grant_type"}"#),
            TokenEndpointError::Unavailable(_)
        ));
    }
}
