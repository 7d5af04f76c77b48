//! The TOML file exactly as operators write it. Nothing outside `config` sees these types:
//! `validate` turns them into the typed [`super::Config`].

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerSection,
    #[serde(default)]
    pub store: Option<StoreSection>,
    #[serde(default)]
    pub tokens: Option<TokensSection>,
    #[serde(default)]
    pub platforms: Vec<PlatformSection>,
    #[serde(default)]
    pub routes: Vec<RouteSection>,
    #[serde(default)]
    pub tools: Vec<ToolSection>,
    #[serde(default)]
    pub lti: Option<LtiSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub listen: String,
    pub public_url: String,
    pub key_env: String,
    pub threads: Option<usize>,
    pub metrics_listen: Option<String>,
    pub max_tool_token_ttl_secs: Option<u64>,
    pub header_timeout_ms: Option<u64>,
    pub tls: Option<TlsSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensSection {
    pub refresh_skew_secs: Option<u64>,
    pub cache_capacity: Option<u64>,
    pub cache_ttl_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformSection {
    pub id: String,
    pub kind: String,
    pub base_url: String,
    pub client_id: String,
    pub client_secret_env: String,
    pub scopes: Option<Vec<String>>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub revoke_url: Option<String>,
    pub issuer: Option<String>,
    pub client_auth: Option<String>,
    pub userinfo_url: Option<String>,
    pub user_id_field: Option<String>,
    pub pkce: Option<bool>,
    pub lti_client_id: Option<String>,
    pub lti_token_url: Option<String>,
    pub lti_token_aud: Option<String>,
    pub ca_file: Option<String>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub host: Option<String>,
    pub prefix: Option<String>,
    pub platform: String,
    pub allow: Option<Vec<String>>,
    pub grant: Option<String>,
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtiSection {
    #[serde(default)]
    pub signing_keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolSection {
    pub id: String,
    pub secret_env: Option<String>,
    pub public_key_file: Option<String>,
    pub api_key_sha256: Option<Vec<String>>,
    #[serde(default)]
    pub platforms: Vec<String>,
    #[serde(default)]
    pub return_to: Vec<String>,
    #[serde(default)]
    pub export_tokens: bool,
}
