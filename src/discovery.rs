//! Authorization-server metadata for a generic OAuth2 platform that names its `issuer`:
//! RFC 8414 first, OpenID Connect discovery when the server publishes only that, fetched once
//! at start (and by `check`) so the rest of the proxy sees fixed endpoints.
//!
//! The document's `issuer` must be exactly the configured one (RFC 8414 section 3.3): a
//! metadata document for another issuer, served from this address by mistake or by an
//! attacker on the path, would send users' consent and the client secret elsewhere.

use serde::Deserialize;
use url::Url;

use crate::lms_http::{self, redact, ClientSettings};

/// Metadata documents are small; anything larger is not one.
const MAX_DOCUMENT: usize = 256 * 1024;

/// The fields the proxy uses, as the server published them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub code_challenge_methods_supported: Option<Vec<String>>,
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Whether the server takes S256 PKCE challenges.
    pub fn supports_pkce(&self) -> bool {
        self.code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"))
    }

    /// Which of the secret-based client authentications the server takes, in the proxy's
    /// order of preference. RFC 8414: an absent list means `client_secret_basic`.
    pub fn secret_auth_methods(&self) -> Vec<&str> {
        match &self.token_endpoint_auth_methods_supported {
            None => vec!["client_secret_basic"],
            Some(methods) => ["client_secret_basic", "client_secret_post"]
                .into_iter()
                .filter(|m| methods.iter().any(|s| s == m))
                .collect(),
        }
    }
}

/// Where the two kinds of document live for `issuer`: RFC 8414 inserts the well-known part
/// between the origin and the issuer's path; OpenID Connect appends it.
pub fn document_urls(issuer: &Url) -> [String; 2] {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    [
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
}

/// Fetches and checks the metadata. Blocking: it runs on a thread and runtime of its own,
/// because config validation is synchronous and may be called from inside a runtime.
pub fn fetch_blocking(issuer: &str, settings: ClientSettings<'_>) -> Result<Metadata, String> {
    let client = lms_http::client(settings)?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start a runtime: {e}"))?;
                rt.block_on(fetch(&client, issuer))
            })
            .join()
            .unwrap_or_else(|_| Err("discovery stopped unexpectedly".to_string()))
    })
}

async fn fetch(client: &reqwest::Client, issuer: &str) -> Result<Metadata, String> {
    let parsed = Url::parse(issuer).map_err(|e| format!("{issuer:?} is not a URL: {e}"))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("an issuer has no query or fragment (RFC 8414)".into());
    }
    let [rfc8414, oidc] = document_urls(&parsed);
    let metadata = match get(client, &rfc8414).await? {
        Some(m) => m,
        None => get(client, &oidc).await?.ok_or_else(|| {
            format!("no metadata: neither {rfc8414} nor {oidc} answered 200 with JSON")
        })?,
    };
    if metadata.issuer != issuer {
        return Err(format!(
            "the metadata names issuer {:?}, not {issuer:?}; refusing it",
            metadata.issuer
        ));
    }
    Ok(metadata)
}

/// `Ok(None)`: the server has no document here (a 4xx), try the other address.
async fn get(client: &reqwest::Client, url: &str) -> Result<Option<Metadata>, String> {
    let mut response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("{url}: {}", redact(e)))?;
    let status = response.status();
    if status.is_client_error() {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(format!("{url} answered {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("{url}: {}", redact(e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("{url}: the document is larger than 256 KiB"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| format!("{url}: not a metadata document: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_addresses_follow_each_rfc() {
        let with_path = Url::parse("https://idp.example.edu/tenant/7").unwrap();
        assert_eq!(
            document_urls(&with_path),
            [
                "https://idp.example.edu/.well-known/oauth-authorization-server/tenant/7",
                "https://idp.example.edu/tenant/7/.well-known/openid-configuration",
            ]
        );
        let bare = Url::parse("https://idp.example.edu").unwrap();
        assert_eq!(
            document_urls(&bare),
            [
                "https://idp.example.edu/.well-known/oauth-authorization-server",
                "https://idp.example.edu/.well-known/openid-configuration",
            ]
        );
    }

    #[test]
    fn client_authentication_and_pkce_come_from_the_lists() {
        let mut m: Metadata = serde_json::from_str(r#"{"issuer":"https://i"}"#).unwrap();
        assert_eq!(m.secret_auth_methods(), ["client_secret_basic"]);
        assert!(!m.supports_pkce());
        m.token_endpoint_auth_methods_supported =
            Some(vec!["private_key_jwt".into(), "client_secret_post".into()]);
        m.code_challenge_methods_supported = Some(vec!["plain".into(), "S256".into()]);
        assert_eq!(m.secret_auth_methods(), ["client_secret_post"]);
        assert!(m.supports_pkce());
        m.token_endpoint_auth_methods_supported = Some(vec!["none".into()]);
        assert!(m.secret_auth_methods().is_empty());
    }
}
