//! Turns the file's raw sections into the typed config, collecting every problem on the way.
//! A platform's entry is `platform.rs`'s; the checks every part shares are `checker.rs`'s.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use jsonwebtoken::DecodingKey;

use super::checker::{scope_words, timeout, Checker};
use super::file::{FileConfig, RouteSection, ServerSection, ToolSection};
use super::{
    AllowRule, Config, ConfigError, EnvLookup, MasterKey, Platform, Route, RouteGrant,
    ServerConfig, StoreConfig, TlsListener, TokensConfig, Tool, ToolJwtKey,
};
use crate::lti_keys::{SigningKey, SigningKeys};
use crate::types::{PlatformId, ScopeSet, Secret, ToolId};

const MIN_TOOL_SECRET_BYTES: usize = 32;
const MAX_THREADS: u64 = 1024;
/// A tool credential's origins are kept as bits of a `u64`, `public_url` first.
const MAX_ROUTE_HOSTS: usize = 63;
/// 30 days: a tool JWT that lives longer is a password in disguise.
const MAX_TOOL_TOKEN_TTL_SECS: u64 = 2_592_000;

pub fn validate(
    raw: FileConfig,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
        base_dir,
        env,
    };
    let server = server(&mut c, &raw.server);
    let store = store(&mut c, raw.store.as_ref());
    let tokens = tokens(&mut c, raw.tokens.as_ref());

    let mut platforms = Vec::new();
    let mut platform_ids = HashSet::new();
    for (i, section) in raw.platforms.iter().enumerate() {
        let key = format!("platforms[{i}]");
        if !platform_ids.insert(section.id.clone()) {
            c.problem(
                format!("{key}.id"),
                format!("duplicate platform id {:?}", section.id),
            );
        }
        if let Some(p) = super::platform::platform(&mut c, &key, section) {
            platforms.push(Arc::new(p));
        }
    }
    if raw.platforms.is_empty() {
        c.problem("platforms", "configure at least one [[platforms]] entry");
    }

    let mut routes = Vec::new();
    let mut places = HashSet::new();
    for (i, section) in raw.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if let Some(r) = route(&mut c, &key, section, &platform_ids) {
            if !places.insert((r.host.clone(), r.prefix.clone())) {
                let place = match &r.host {
                    Some(host) => format!("host {host:?} with prefix {:?}", r.prefix),
                    None => format!("prefix {:?}", r.prefix),
                };
                c.problem(format!("{key}.prefix"), format!("duplicate route: {place}"));
            }
            routes.push(r);
        }
    }
    if raw.routes.is_empty() {
        c.problem("routes", "configure at least one [[routes]] entry");
    }
    let hosts: HashSet<&String> = routes.iter().filter_map(|r| r.host.as_ref()).collect();
    if hosts.len() > MAX_ROUTE_HOSTS {
        c.problem(
            "routes",
            format!("{} distinct hosts; at most {MAX_ROUTE_HOSTS}", hosts.len()),
        );
    }

    let mut tools = Vec::new();
    let mut tool_ids = HashSet::new();
    for (i, section) in raw.tools.iter().enumerate() {
        let key = format!("tools[{i}]");
        if !tool_ids.insert(section.id.clone()) {
            c.problem(
                format!("{key}.id"),
                format!("duplicate tool id {:?}", section.id),
            );
        }
        if let Some(t) = tool(&mut c, &key, section, &platform_ids) {
            tools.push(Arc::new(t));
        }
    }

    shared_tool_credentials(&mut c, &raw.tools, &tools);
    let lti_keys = lti_keys(&mut c, raw.lti.as_ref());
    service_routes(
        &mut c,
        &routes,
        &platforms,
        lti_keys.as_ref(),
        raw.lti.is_some(),
    );

    match (server, store) {
        (Some(server), Some(store)) if c.problems.is_empty() => Ok(Config {
            server,
            store,
            tokens,
            platforms,
            routes,
            tools,
            lti_keys,
        }),
        _ => Err(ConfigError {
            problems: c.problems,
        }),
    }
}

fn server(c: &mut Checker<'_>, s: &ServerSection) -> Option<ServerConfig> {
    let listen = c.socket_addr("server.listen", &s.listen);
    let metrics_listen = match &s.metrics_listen {
        Some(v) => Some(c.socket_addr("server.metrics_listen", v)?),
        None => None,
    };
    let public_url = public_url(c, &s.public_url);
    let master_key =
        c.env_var("server.key_env", &s.key_env)
            .and_then(|value| match decode_master_key(&value) {
                Ok(key) => Some(key),
                Err(e) => {
                    c.problem("server.key_env", format!("{}: {e}", s.key_env));
                    None
                }
            });
    let threads = match s.threads {
        Some(n) => c
            .in_range("server.threads", n as u64, 1, MAX_THREADS)
            .map(|n| n as usize),
        None => Some(std::thread::available_parallelism().map_or(2, |n| n.get())),
    };
    let max_ttl = match s.max_tool_token_ttl_secs {
        Some(n) => c
            .in_range(
                "server.max_tool_token_ttl_secs",
                n,
                60,
                MAX_TOOL_TOKEN_TTL_SECS,
            )
            .map(Duration::from_secs),
        None => Some(Duration::from_secs(86_400)),
    };
    let header_timeout = timeout(c, "server.header_timeout_ms", s.header_timeout_ms, 10_000);
    let tls = s.tls.as_ref().and_then(|t| {
        let cert = c.existing_file("server.tls.cert", &t.cert);
        let key = c.existing_file("server.tls.key", &t.key);
        Some(TlsListener {
            cert: cert?,
            key: key?,
        })
    });
    let (public_url, is_https) = public_url?;
    Some(ServerConfig {
        listen: listen?,
        public_url,
        public_url_is_https: is_https,
        master_key: master_key?,
        threads: threads?,
        metrics_listen,
        max_tool_token_ttl: max_ttl?,
        header_timeout: header_timeout?,
        tls,
    })
}

fn public_url(c: &mut Checker<'_>, value: &str) -> Option<(String, bool)> {
    const KEY: &str = "server.public_url";
    let url = c.http_url(KEY, value)?;
    if url.path() != "/" || value.ends_with('/') || url.query().is_some() {
        c.problem(
            KEY,
            format!(
                "{value:?} must be an origin only, scheme://host[:port], with no path or trailing slash"
            ),
        );
        return None;
    }
    Some((url.origin().ascii_serialization(), url.scheme() == "https"))
}

/// Accepts standard or URL-safe base64, with or without padding.
pub fn decode_master_key(value: &str) -> Result<MasterKey, String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = value.trim().trim_end_matches('=');
    let bytes = STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| "is not base64 (generate one with: openssl rand -base64 32)".to_string())?;
    let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "decodes to {} bytes; the master key must be 32 bytes (openssl rand -base64 32)",
            b.len()
        )
    })?;
    Ok(MasterKey(key))
}

fn store(c: &mut Checker<'_>, section: Option<&super::file::StoreSection>) -> Option<StoreConfig> {
    let (url, key) = match section {
        Some(s) if s.url.is_some() && s.url_env.is_some() => {
            c.problem("store", "set url or url_env, not both");
            return None;
        }
        Some(super::file::StoreSection {
            url_env: Some(var), ..
        }) => (c.env_var("store.url_env", var)?, "store.url_env"),
        Some(super::file::StoreSection { url: Some(url), .. }) => (url.clone(), "store.url"),
        _ => ("sqlite://data/lms-proxy.db".to_string(), "store.url"),
    };
    let ca_file = section.and_then(|s| s.ca_file.as_deref());
    match store_url(&url, key == "store.url_env") {
        Ok(StoreUrl::Sqlite(path)) => {
            if ca_file.is_some() {
                c.problem("store.ca_file", "only a PostgreSQL store uses ca_file");
            }
            Some(StoreConfig::Sqlite(c.resolve(&path)))
        }
        Ok(StoreUrl::Postgres { verifies }) => {
            let ca_file = match ca_file {
                Some(path) => {
                    if !verifies {
                        c.problem(
                            "store.ca_file",
                            "is used only with sslmode=verify-ca or sslmode=verify-full in the URL",
                        );
                    }
                    Some(c.existing_file("store.ca_file", path)?)
                }
                None => None,
            };
            Some(StoreConfig::Postgres(super::PostgresSettings {
                url: Secret::new(url),
                ca_file,
            }))
        }
        Err(problem) => {
            c.problem(key, problem);
            None
        }
    }
}

/// A store URL, checked; shared by the config and `lms-proxy store copy`.
pub enum StoreUrl {
    /// The path as written: relative to the config file's folder, or absolute.
    Sqlite(String),
    /// `verifies`: the server's certificate is checked (`verify-ca`, `verify-full`).
    Postgres { verifies: bool },
}

/// Checks a store URL without echoing it (it may hold a password). `from_env`: the URL came
/// from an environment variable, the only place a password may be.
pub fn store_url(url: &str, from_env: bool) -> Result<StoreUrl, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err("sqlite:// needs a file path, e.g. sqlite://data/lms-proxy.db".into());
        }
        return Ok(StoreUrl::Sqlite(path.to_string()));
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(
            "use sqlite://PATH (relative to this file), sqlite:///ABSOLUTE/PATH or \
                    postgres://USER@HOST/DATABASE?sslmode=verify-full"
                .into(),
        );
    }
    let parsed = url::Url::parse(url).map_err(|_| {
        "is not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full)"
            .to_string()
    })?;
    if parsed.password().is_some() && !from_env {
        return Err(
            "holds a password; put the URL in an environment variable and name it in \
                    store.url_env"
                .into(),
        );
    }
    let mode = parsed
        .query_pairs()
        .find(|(k, _)| k == "sslmode")
        .map(|(_, v)| v.into_owned());
    let known = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    if let Some(mode) = &mode {
        if !known.contains(&mode.as_str()) {
            return Err(format!(
                "sslmode={mode:?} is not one of {}",
                known.join(", ")
            ));
        }
    }
    let encrypted = matches!(
        mode.as_deref(),
        Some("require" | "verify-ca" | "verify-full")
    );
    let host = parsed.host_str().unwrap_or("");
    let local = host.is_empty()
        || host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !encrypted && !local {
        return Err(format!(
            "sends grants to {host} without TLS (sslmode={}); add sslmode=verify-full (or require)",
            mode.as_deref().unwrap_or("prefer")
        ));
    }
    if sqlx::postgres::PgConnectOptions::from_str(url).is_err() {
        return Err(
            "is not a valid PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE?sslmode=verify-full)"
                .into(),
        );
    }
    Ok(StoreUrl::Postgres {
        verifies: matches!(mode.as_deref(), Some("verify-ca" | "verify-full")),
    })
}

fn tokens(c: &mut Checker<'_>, t: Option<&super::file::TokensSection>) -> TokensConfig {
    let skew = t.and_then(|t| t.refresh_skew_secs).unwrap_or(60);
    let capacity = t.and_then(|t| t.cache_capacity).unwrap_or(1_000_000);
    let ttl = t.and_then(|t| t.cache_ttl_secs).unwrap_or(300);
    if capacity == 0 {
        c.problem("tokens.cache_capacity", "must be at least 1");
    }
    if ttl == 0 {
        c.problem("tokens.cache_ttl_secs", "must be at least 1");
    }
    TokensConfig {
        refresh_skew: Duration::from_secs(skew),
        cache_capacity: capacity,
        cache_ttl: Duration::from_secs(ttl),
    }
}

/// `[lti] signing_keys`: every file a usable RSA key.
fn lti_keys(
    c: &mut Checker<'_>,
    section: Option<&super::file::LtiSection>,
) -> Option<Arc<SigningKeys>> {
    let section = section?;
    if section.signing_keys.is_empty() {
        c.problem(
            "lti.signing_keys",
            "list at least one PEM key file (lms-proxy keys new --out FILE makes one)",
        );
        return None;
    }
    let mut keys = Vec::new();
    for (i, file) in section.signing_keys.iter().enumerate() {
        let path = format!("lti.signing_keys[{i}]");
        let Some(resolved) = c.existing_file(&path, file) else {
            continue;
        };
        match std::fs::read(&resolved)
            .map_err(|e| format!("cannot read {}: {e}", resolved.display()))
            .and_then(|pem| SigningKey::from_pem(&pem))
        {
            Ok(key) => keys.push(key),
            Err(e) => c.problem(path, e),
        }
    }
    if keys.len() != section.signing_keys.len() {
        return None;
    }
    SigningKeys::new(keys).map(Arc::new)
}

/// A service-token route needs its platform's LTI client and a key to sign with.
fn service_routes(
    c: &mut Checker<'_>,
    routes: &[Route],
    platforms: &[Arc<Platform>],
    keys: Option<&Arc<SigningKeys>>,
    lti_section: bool,
) {
    for (i, route) in routes.iter().enumerate() {
        if route.grant == RouteGrant::User {
            continue;
        }
        let platform = platforms.iter().find(|p| p.id == route.platform);
        if platform.is_some_and(|p| p.lti.is_none()) {
            c.problem(
                format!("routes[{i}].platform"),
                format!(
                    "grant = \"client_credentials\" needs lti_client_id on platform {:?}",
                    route.platform.as_str()
                ),
            );
        }
        if keys.is_none() && !lti_section {
            c.problem(
                format!("routes[{i}].grant"),
                "client_credentials needs [lti] signing_keys to sign its assertions with",
            );
        }
    }
}

fn route(
    c: &mut Checker<'_>,
    key: &str,
    r: &RouteSection,
    platforms: &HashSet<String>,
) -> Option<Route> {
    let host = match &r.host {
        Some(h) => {
            let lower = h.to_ascii_lowercase();
            if !is_dns_name(&lower) {
                c.problem(
                    format!("{key}.host"),
                    format!(
                        "{h:?} is not a DNS host name (letters, digits, '-' and dots; no port)"
                    ),
                );
            }
            Some(lower)
        }
        None => None,
    };
    let prefix = match (&r.prefix, &host) {
        (Some(prefix), _) => route_prefix(c, &format!("{key}.prefix"), prefix),
        (None, Some(_)) => Some("/".to_string()),
        (None, None) => {
            c.problem(
                format!("{key}.prefix"),
                "is required (or give the route a host)",
            );
            None
        }
    };
    if !platforms.contains(&r.platform) {
        c.problem(
            format!("{key}.platform"),
            format!("no platform with id {:?}", r.platform),
        );
    }
    let allow = match &r.allow {
        Some(entries) => {
            let mut rules = Vec::new();
            for (i, entry) in entries.iter().enumerate() {
                match AllowRule::parse(entry) {
                    Ok(rule) => rules.push(rule),
                    Err(e) => c.problem(format!("{key}.allow[{i}]"), e),
                }
            }
            Some(rules)
        }
        None => None,
    };
    let grant = match (r.grant.as_deref(), &r.scopes) {
        (None | Some("user"), None) => Some(RouteGrant::User),
        (None | Some("user"), Some(_)) => {
            c.problem(
                format!("{key}.scopes"),
                "only a route with grant = \"client_credentials\" takes scopes (a user's come from the platform)",
            );
            None
        }
        (Some("client_credentials"), Some(scopes)) if !scopes.is_empty() => {
            scope_words(c, key, scopes);
            Some(RouteGrant::Service(ScopeSet::new(scopes)))
        }
        (Some("client_credentials"), _) => {
            c.problem(
                format!("{key}.scopes"),
                "grant = \"client_credentials\" needs the LTI scopes to ask for, e.g. [\"https://purl.imsglobal.org/spec/lti-ags/scope/score\"]",
            );
            None
        }
        (Some(other), _) => {
            c.problem(
                format!("{key}.grant"),
                format!("{other:?} is not one of user, client_credentials"),
            );
            None
        }
    };
    Some(Route {
        host,
        prefix: prefix?,
        platform: PlatformId::new(r.platform.as_str()),
        allow,
        grant: grant?,
    })
}

/// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn route_prefix(c: &mut Checker<'_>, key: &str, prefix: &str) -> Option<String> {
    if prefix == "/" {
        return Some(prefix.to_string());
    }
    let bad = |why: &str| format!("{prefix:?} {why}");
    let Some(rest) = prefix.strip_prefix('/') else {
        c.problem(key, bad("must start with '/'"));
        return None;
    };
    if rest.ends_with('/') {
        c.problem(key, bad("must not end with '/'"));
        return None;
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
    };
    if !rest.split('/').all(segment_ok) {
        c.problem(
            key,
            bad("must be /segment[/segment...] of letters, digits, '-', '_', '.', '~'"),
        );
        return None;
    }
    // The proxy's own paths win over every route, so no prefix may sit inside one.
    for reserved in crate::own_paths::reserved() {
        let reserved_trimmed = reserved.trim_end_matches('/');
        if prefix == reserved_trimmed || prefix.starts_with(&format!("{reserved_trimmed}/")) {
            c.problem(key, bad(&format!("is inside the reserved path {reserved}")));
            return None;
        }
    }
    Some(prefix.to_string())
}

fn tool(
    c: &mut Checker<'_>,
    key: &str,
    t: &ToolSection,
    platforms: &HashSet<String>,
) -> Option<Tool> {
    let id_ok = !t.id.is_empty()
        && t.id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !id_ok {
        c.problem(
            format!("{key}.id"),
            format!("{:?} must match [A-Za-z0-9._-]+", t.id),
        );
    }
    if t.secret_env.is_some() && t.public_key_file.is_some() {
        c.problem(
            key.to_string(),
            "set secret_env (HS256) or public_key_file (RS256/ES256/EdDSA), not both",
        );
    }
    let api_keys = t.api_key_sha256.clone().unwrap_or_default();
    if t.secret_env.is_none() && t.public_key_file.is_none() && api_keys.is_empty() {
        c.problem(
            key.to_string(),
            "give the tool a credential: secret_env, public_key_file or api_key_sha256",
        );
    }
    let jwt_key = if let Some(var) = &t.secret_env {
        let path = format!("{key}.secret_env");
        c.env_var(&path, var).and_then(|secret| {
            if secret.len() < MIN_TOOL_SECRET_BYTES {
                c.problem(
                    path,
                    format!(
                        "{var} holds {} bytes; a tool secret needs at least {MIN_TOOL_SECRET_BYTES} (openssl rand -base64 32)",
                        secret.len()
                    ),
                );
                return None;
            }
            Some(ToolJwtKey {
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                secret: Some(Secret::new(secret)),
            })
        })
    } else if let Some(file) = &t.public_key_file {
        let path = format!("{key}.public_key_file");
        c.existing_file(&path, file).and_then(|resolved| {
            match std::fs::read(&resolved)
                .map_err(|e| e.to_string())
                .and_then(|pem| public_key(&pem))
            {
                Ok(decoding) => Some(ToolJwtKey {
                    decoding,
                    secret: None,
                }),
                Err(e) => {
                    c.problem(path, format!("{}: {e}", resolved.display()));
                    None
                }
            }
        })
    } else {
        None
    };
    let mut api_key_hashes = Vec::new();
    for (i, hex_digest) in api_keys.iter().enumerate() {
        match hex::decode(hex_digest.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        {
            Some(digest) => api_key_hashes.push(digest),
            None => c.problem(
                format!("{key}.api_key_sha256[{i}]"),
                "must be 64 hex digits, the SHA-256 of the key (printf %s KEY | sha256sum)",
            ),
        }
    }
    if t.platforms.is_empty() {
        c.problem(
            format!("{key}.platforms"),
            "list the platforms this tool may use",
        );
    }
    for (i, p) in t.platforms.iter().enumerate() {
        if !platforms.contains(p) {
            c.problem(
                format!("{key}.platforms[{i}]"),
                format!("no platform with id {p:?}"),
            );
        }
    }
    let mut return_to = Vec::new();
    for (i, entry) in t.return_to.iter().enumerate() {
        let path = format!("{key}.return_to[{i}]");
        if let Some(url) = c.http_url(&path, entry) {
            if url.query().is_some() {
                c.problem(path, "must be an origin and path prefix, without a query");
            } else {
                return_to.push(url);
            }
        }
    }
    if (t.secret_env.is_some() && jwt_key.is_none())
        || (t.public_key_file.is_some() && jwt_key.is_none())
        || !id_ok
    {
        return None;
    }
    Some(Tool {
        id: ToolId::new(t.id.as_str()),
        jwt_key,
        api_key_hashes,
        platforms: t
            .platforms
            .iter()
            .map(|p| PlatformId::new(p.as_str()))
            .collect(),
        return_to,
        export_tokens: t.export_tokens,
    })
}

/// Two tools with one credential would be one tool able to act as the other: refused,
/// whether they name one `secret_env`, two variables holding the same secret, or one key hash.
fn shared_tool_credentials(c: &mut Checker<'_>, sections: &[ToolSection], tools: &[Arc<Tool>]) {
    let mut env_names: HashMap<&str, usize> = HashMap::new();
    for (i, t) in sections.iter().enumerate() {
        if let Some(var) = &t.secret_env {
            if let Some(first) = env_names.insert(var.as_str(), i) {
                c.problem(
                    format!("tools[{i}].secret_env"),
                    format!("{var} is also tools[{first}]'s secret: give every tool its own"),
                );
            }
        }
    }
    let key = |id: &ToolId| {
        let i = sections
            .iter()
            .position(|s| s.id == id.as_str())
            .unwrap_or(0);
        format!("tools[{i}]")
    };
    let mut secrets: HashMap<&str, &ToolId> = HashMap::new();
    let mut hashes: HashMap<[u8; 32], &ToolId> = HashMap::new();
    for tool in tools {
        let secret = tool.jwt_key.as_ref().and_then(|k| k.secret.as_ref());
        if let Some(secret) = secret {
            if let Some(other) = secrets.insert(secret.expose(), &tool.id) {
                if *other != tool.id {
                    c.problem(
                        format!("{}.secret_env", key(&tool.id)),
                        format!("holds the same secret as tool {other}: give every tool its own"),
                    );
                }
            }
        }
        for hash in &tool.api_key_hashes {
            if let Some(other) = hashes.insert(*hash, &tool.id) {
                c.problem(
                    format!("{}.api_key_sha256", key(&tool.id)),
                    if *other == tool.id {
                        "lists the same key twice".to_string()
                    } else {
                        format!("a key is also tool {other}'s: give every tool its own")
                    },
                );
            }
        }
    }
}

fn public_key(pem: &[u8]) -> Result<DecodingKey, String> {
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(
            "holds a private key: give the tool's public key only (openssl pkey -in KEY -pubout), and keep the private key with the tool"
                .into(),
        );
    }
    DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| "is not an RSA, EC (P-256/P-384) or Ed25519 public key in PEM".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;
    use url::Url;

    #[test]
    fn master_key_accepts_both_alphabets_with_or_without_padding() {
        let bytes = [0xfbu8; 32];
        let std = base64::engine::general_purpose::STANDARD.encode(bytes);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(decode_master_key(&std).unwrap().0, bytes);
        assert_eq!(decode_master_key(&url).unwrap().0, bytes);
        assert!(decode_master_key("c2hvcnQ=")
            .unwrap_err()
            .contains("5 bytes"));
        assert!(decode_master_key("not base64 !!").is_err());
    }

    #[test]
    fn upstream_parts() {
        let upstream = Upstream::from_base_url;
        let u = upstream(&Url::parse("https://canvas.example.edu/").unwrap()).unwrap();
        assert_eq!(
            (
                u.tls,
                u.port,
                u.origin.as_str(),
                u.base_path.as_str(),
                u.host_header.as_str()
            ),
            (
                true,
                443,
                "https://canvas.example.edu",
                "",
                "canvas.example.edu"
            )
        );
        let u = upstream(&Url::parse("http://127.0.0.1:8081/lms/").unwrap()).unwrap();
        assert_eq!(
            (
                u.port,
                u.origin.as_str(),
                u.base_path.as_str(),
                u.host_header.as_str()
            ),
            (8081, "http://127.0.0.1:8081", "/lms", "127.0.0.1:8081")
        );
        let u = upstream(&Url::parse("http://[::1]:9/").unwrap()).unwrap();
        assert_eq!(u.host, "::1");
    }
}
