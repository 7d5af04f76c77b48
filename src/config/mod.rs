//! Configuration: one TOML file in, one validated, typed [`Config`] out.
//!
//! Validation collects every problem it finds (with the key path, `platforms[1].base_url: ...`)
//! instead of stopping at the first, so an operator fixes a file in one pass. Secrets are read
//! here from the environment variables the file names, and nowhere else.

mod allow;
mod checker;
mod file;
mod platform;
mod structure;
mod validate;

pub use validate::{store_url, StoreUrl};

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::DecodingKey;
use url::Url;

use crate::lti_keys::SigningKeys;
use crate::provider::{ClientAuth, Provider};
use crate::types::{PlatformId, ScopeSet, Secret, ToolId};

pub use allow::{AllowRule, MethodMatch, PathPattern, Segment};
pub use validate::decode_master_key;

/// Where the config's environment variables come from: the process environment in production,
/// a map in tests and in the demo.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub tokens: TokensConfig,
    pub platforms: Vec<Arc<Platform>>,
    pub routes: Vec<Route>,
    pub tools: Vec<Arc<Tool>>,
    /// `[lti] signing_keys`: what signs LTI client assertions and `/.well-known/jwks.json`
    /// publishes.
    pub lti_keys: Option<Arc<SigningKeys>>,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::single("", format!("cannot read {}: {e}", path.display())))?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, &base_dir, env)
    }

    /// Parses and validates TOML text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
        let raw = structure::read(text).map_err(|problems| ConfigError { problems })?;
        validate::validate(raw, base_dir, env)
    }

    /// Every origin a tool may address: `public_url` first, then each host route's origin
    /// (`public_url` with the route's host), once each. A tool JWT's `aud` must name one.
    pub fn origins(&self) -> Vec<String> {
        let mut origins = vec![self.server.public_url.clone()];
        for route in &self.routes {
            if let Some(host) = &route.host {
                let origin = self.server.origin_for_host(host);
                if !origins.contains(&origin) {
                    origins.push(origin);
                }
            }
        }
        origins
    }

    pub fn platform(&self, id: &PlatformId) -> Option<&Arc<Platform>> {
        self.platforms.iter().find(|p| &p.id == id)
    }

    pub fn tool(&self, id: &ToolId) -> Option<&Arc<Tool>> {
        self.tools.iter().find(|t| &t.id == id)
    }

    pub fn platforms_by_id(&self) -> HashMap<PlatformId, Arc<Platform>> {
        self.platforms
            .iter()
            .map(|p| (p.id.clone(), Arc::clone(p)))
            .collect()
    }
}

#[derive(Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The external origin, `scheme://host[:port]`, without a trailing slash.
    pub public_url: String,
    pub public_url_is_https: bool,
    pub master_key: MasterKey,
    pub threads: usize,
    pub metrics_listen: Option<SocketAddr>,
    pub max_tool_token_ttl: Duration,
    /// A request head must arrive whole within this (slow clients are cut off).
    pub header_timeout: Duration,
    pub tls: Option<TlsListener>,
}

impl ServerConfig {
    /// `public_url` with its host replaced: same scheme and port.
    pub fn origin_for_host(&self, host: &str) -> String {
        let scheme = if self.public_url_is_https {
            "https"
        } else {
            "http"
        };
        let port = Url::parse(&self.public_url)
            .ok()
            .and_then(|u| u.port())
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!("{scheme}://{host}{port}")
    }
}

#[derive(Debug, Clone)]
pub struct TlsListener {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Sqlite(PathBuf),
    Postgres(PostgresSettings),
}

/// A shared PostgreSQL store. The URL may hold a password, so it is a secret: it comes from
/// an environment variable whenever it does, and never reaches a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresSettings {
    pub url: Secret,
    /// Roots to verify the server's certificate with, instead of the system's.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct TokensConfig {
    pub refresh_skew: Duration,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
}

#[derive(Debug)]
pub struct Platform {
    pub id: PlatformId,
    /// What this kind of LMS does differently; the rest of the proxy asks it.
    pub provider: &'static dyn Provider,
    pub base_url: Url,
    /// The LMS upstream: where proxied requests go and whose URLs are rewritten back to us.
    pub upstream: Upstream,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revoke_url: Option<Url>,
    /// How the proxy authenticates at the token endpoint: the kind's way, or for generic
    /// OAuth2 what the config or the issuer's metadata says.
    pub client_auth: ClientAuth,
    /// Where to learn who consented when the token answer does not say.
    pub who_consented: Option<UserInfo>,
    pub pkce: bool,
    /// The tool's LTI 1.3 registration on this LMS, for service tokens.
    pub lti: Option<LtiClient>,
    /// DER certificates trusted for this platform instead of the system roots.
    pub ca_certs: Option<Vec<Vec<u8>>>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

/// An LTI 1.3 client: who the assertion says it is, and where and for whom it is posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LtiClient {
    pub client_id: String,
    pub token_url: Url,
    /// The assertion's `aud`: Canvas wants its token URL.
    pub aud: String,
}

/// A who-am-I call resolved to an address: the kind's own (Brightspace `whoami`) or a
/// generic server's userinfo endpoint, and the answer's field naming the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub url: Url,
    pub field: String,
}

/// The parts of `base_url` the proxy needs on every request, computed once.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `scheme://host[:port]` as the LMS writes it in absolute URLs (default port omitted).
    pub origin: String,
    /// The path `base_url` carries (`""` for none), prepended to every forwarded path.
    pub base_path: String,
    /// The `Host` header value sent to the LMS.
    pub host_header: String,
}

impl Upstream {
    pub fn from_base_url(base: &Url) -> Option<Upstream> {
        let tls = base.scheme() == "https";
        let host = base.host_str()?.to_string();
        let port = base.port_or_known_default()?;
        let origin = base.origin().ascii_serialization();
        let host_header = match base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        // url's host_str keeps IPv6 brackets; the peer wants the bare address.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some(Self {
            tls,
            host,
            port,
            origin,
            base_path: base.path().trim_end_matches('/').to_string(),
            host_header,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Matched against the request's `Host` (lower case, port ignored); `None` for a route
    /// any host reaches.
    pub host: Option<String>,
    /// `/canvas`, or `/` for a catch-all; never with a trailing slash otherwise.
    pub prefix: String,
    pub platform: PlatformId,
    pub allow: Option<Vec<AllowRule>>,
    pub grant: RouteGrant,
}

/// Whose token a route's requests carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteGrant {
    /// The tool's user's own grant (the default).
    User,
    /// The platform's LTI service token for these scopes (`grant = "client_credentials"`).
    Service(ScopeSet),
}

#[derive(Debug)]
pub struct Tool {
    pub id: ToolId,
    pub jwt_key: Option<ToolJwtKey>,
    /// SHA-256 digests of the tool's static API keys.
    pub api_key_hashes: Vec<[u8; 32]>,
    pub platforms: Vec<PlatformId>,
    pub return_to: Vec<Url>,
    pub export_tokens: bool,
}

impl Tool {
    pub fn may_use(&self, platform: &PlatformId) -> bool {
        self.platforms.iter().any(|p| p == platform)
    }
}

/// How a tool's JWTs are verified.
#[derive(Clone)]
pub struct ToolJwtKey {
    pub decoding: DecodingKey,
    /// Present only for HS256 tools: `mint` signs with it.
    pub secret: Option<Secret>,
}

impl fmt::Debug for ToolJwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolJwtKey")
            .field("family", &self.decoding.family())
            .finish_non_exhaustive()
    }
}

/// The 32-byte master key; everything sealed or signed derives from it.
#[derive(Clone)]
pub struct MasterKey(pub [u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// One problem in the config, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one config file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn single(path: &str, message: impl Into<String>) -> Self {
        Self {
            problems: vec![Problem {
                path: path.to_string(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
