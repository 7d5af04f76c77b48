//! One `[[platforms]]` entry, validated: its kind's defaults, a generic OAuth2 issuer's
//! metadata (fetched here, so a `Platform` is complete the moment it exists), the client
//! authentication, who-am-I, PKCE, the LTI client, timeouts and trusted roots.

use std::path::Path;

use url::Url;

use super::checker::{scope_words, timeout, Checker};
use super::file::PlatformSection;
use super::{LtiClient, Platform, Upstream, UserInfo};
use crate::discovery::{self, Metadata};
use crate::lms_http::ClientSettings;
use crate::provider::{self, under, ClientAuth, Endpoints, Provider};
use crate::types::{PlatformId, Secret};

/// The configured scopes plus any the kind always needs (Blackboard's `offline`, without
/// which there is no refresh token), each once.
fn with_added_scopes(mut scopes: Vec<String>, added: &[&str]) -> Vec<String> {
    for scope in added {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push((*scope).to_string());
        }
    }
    scopes
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn platform(c: &mut Checker<'_>, key: &str, p: &PlatformSection) -> Option<Platform> {
    let id_ok = is_id(&p.id);
    if !id_ok {
        c.problem(
            format!("{key}.id"),
            format!("{:?} must match [a-z0-9-]+", p.id),
        );
    }
    let provider = provider::for_kind(&p.kind);
    if provider.is_none() {
        let kinds: Vec<&str> = provider::KINDS.iter().map(|k| k.kind()).collect();
        c.problem(
            format!("{key}.kind"),
            format!("{:?} is not one of {}", p.kind, kinds.join(", ")),
        );
    }
    let base_url = c.http_url(&format!("{key}.base_url"), &p.base_url);
    if let Some(url) = &base_url {
        if url.query().is_some() {
            c.problem(format!("{key}.base_url"), "must not have a query");
        }
    }
    if p.client_id.is_empty() {
        c.problem(format!("{key}.client_id"), "must not be empty");
    }
    let client_secret = c.env_var(&format!("{key}.client_secret_env"), &p.client_secret_env);
    let scopes = p.scopes.clone().unwrap_or_default();
    if let (Some(provider), true) = (provider, scopes.is_empty()) {
        if let Some(example) = provider.required_scopes_example() {
            c.problem(
                format!("{key}.scopes"),
                format!(
                    "{} needs the scopes to ask for, e.g. {example}",
                    provider.kind()
                ),
            );
        }
    }
    scope_words(c, key, &scopes);

    let ca_certs = match &p.ca_file {
        Some(file) => {
            let path = format!("{key}.ca_file");
            let resolved = c.existing_file(&path, file)?;
            match load_ca_certs(&resolved) {
                Ok(certs) => Some(certs),
                Err(e) => {
                    c.problem(path, e);
                    None
                }
            }
        }
        None => None,
    };
    let connect_timeout = timeout(
        c,
        &format!("{key}.connect_timeout_ms"),
        p.connect_timeout_ms,
        5_000,
    );
    let read_timeout = timeout(
        c,
        &format!("{key}.read_timeout_ms"),
        p.read_timeout_ms,
        60_000,
    );

    let metadata = match (provider, connect_timeout, read_timeout) {
        (Some(provider), Some(connect_timeout), Some(read_timeout))
            if p.ca_file.is_none() || ca_certs.is_some() =>
        {
            discover(
                c,
                key,
                p,
                provider,
                ClientSettings {
                    ca_certs: ca_certs.as_deref(),
                    connect_timeout,
                    read_timeout,
                },
            )
        }
        _ => None,
    };
    let metadata = metadata.as_ref();

    let mut endpoint = |name: &str, given: &Option<String>, default: Option<String>| {
        let path = format!("{key}.{name}");
        match given.as_ref().or(default.as_ref()) {
            Some(value) => c.http_url(&path, value).map(Some),
            None => Some(None),
        }
    };
    let mut defaults = match (provider, &base_url) {
        (Some(provider), Some(base)) => provider.endpoints(base),
        _ => Endpoints::default(),
    };
    if let Some(m) = metadata {
        defaults.authorize = m.authorization_endpoint.clone();
        defaults.token = m.token_endpoint.clone();
        defaults.revoke = m.revocation_endpoint.clone();
    }
    let authorize_url = endpoint("authorize_url", &p.authorize_url, defaults.authorize);
    let token_url = endpoint("token_url", &p.token_url, defaults.token);
    let revoke_url = endpoint("revoke_url", &p.revoke_url, defaults.revoke);
    let userinfo_url = endpoint(
        "userinfo_url",
        &p.userinfo_url,
        metadata.and_then(|m| m.userinfo_endpoint.clone()),
    );
    // An issuer that could not be read is reported once, not also as missing endpoints.
    let discovery_failed = p.issuer.is_some() && metadata.is_none();
    if let Some(provider) = provider.filter(|p| p.needs_endpoints() && !discovery_failed) {
        for (name, value, field) in [
            ("authorize_url", &authorize_url, "authorization_endpoint"),
            ("token_url", &token_url, "token_endpoint"),
        ] {
            if matches!(value, Some(None)) {
                let message = if metadata.is_some() {
                    format!("is required: the issuer's metadata names no {field}")
                } else {
                    format!(
                        "is required for kind = \"{}\" (or name its `issuer`)",
                        provider.kind()
                    )
                };
                c.problem(format!("{key}.{name}"), message);
            }
        }
    }
    if let (Some(issuer), Some(_)) = (&p.issuer, metadata) {
        // Metadata fetched over TLS must not send the secret or a code over plain HTTP.
        if issuer.starts_with("https:") {
            for (name, url) in [
                ("authorize_url", &authorize_url),
                ("token_url", &token_url),
                ("revoke_url", &revoke_url),
                ("userinfo_url", &userinfo_url),
            ] {
                if let Some(Some(url)) = url {
                    if url.scheme() != "https" {
                        c.problem(
                            format!("{key}.{name}"),
                            format!("{url} is not https, but the issuer is"),
                        );
                    }
                }
            }
        }
    }

    let client_auth = client_auth(c, key, p, provider, metadata);
    let who_consented =
        match (userinfo_url, &p.user_id_field) {
            (Some(Some(url)), field) => Some(Some(UserInfo {
                url,
                field: field.clone().unwrap_or_else(|| "sub".to_string()),
            })),
            (Some(None), Some(_)) => {
                c.problem(
                    format!("{key}.user_id_field"),
                    "needs `userinfo_url` (or an issuer whose metadata names a userinfo_endpoint)",
                );
                None
            }
            (Some(None), None) => Some(provider.zip(base_url.as_ref()).and_then(
                |(provider, base)| {
                    let whoami = provider.whoami()?;
                    Some(UserInfo {
                        url: Url::parse(&under(base, whoami.path)?).ok()?,
                        field: whoami.field.to_string(),
                    })
                },
            )),
            (None, _) => None,
        };
    let lti = lti_client(c, key, p, token_url.as_ref().and_then(Option::as_ref));
    let pkce = p.pkce.unwrap_or_else(|| match metadata {
        Some(m) => m.supports_pkce(),
        None => provider.is_some_and(|p| p.pkce_by_default()),
    });

    let provider = provider?;
    let base_url = base_url?;
    let upstream = Upstream::from_base_url(&base_url)?;
    if !id_ok {
        return None;
    }
    Some(Platform {
        id: PlatformId::new(p.id.as_str()),
        provider,
        pkce,
        lti: lti?,
        client_auth: client_auth?,
        who_consented: who_consented?,
        upstream,
        base_url,
        client_id: p.client_id.clone(),
        client_secret: Secret::new(client_secret?),
        scopes: with_added_scopes(scopes, provider.added_scopes()),
        authorize_url: authorize_url??,
        token_url: token_url??,
        revoke_url: revoke_url?,
        ca_certs,
        connect_timeout: connect_timeout?,
        read_timeout: read_timeout?,
    })
}

/// The issuer's metadata, for a kind that discovers and a platform that names an issuer.
/// Keys that only such a kind takes are refused on the others.
fn discover(
    c: &mut Checker<'_>,
    key: &str,
    p: &PlatformSection,
    provider: &dyn Provider,
    settings: ClientSettings<'_>,
) -> Option<Metadata> {
    if !provider.discovers() {
        for (name, set) in [
            ("issuer", p.issuer.is_some()),
            ("userinfo_url", p.userinfo_url.is_some()),
            ("user_id_field", p.user_id_field.is_some()),
        ] {
            if set {
                c.problem(
                    format!("{key}.{name}"),
                    format!(
                        "only kind = \"oauth2\" takes this; {} knows its own",
                        provider.kind()
                    ),
                );
            }
        }
        return None;
    }
    let issuer = p.issuer.as_ref()?;
    let path = format!("{key}.issuer");
    let url = c.http_url(&path, issuer)?;
    if url.query().is_some() {
        c.problem(path, "an issuer has no query (RFC 8414)");
        return None;
    }
    match discovery::fetch_blocking(issuer, settings) {
        Ok(metadata) => Some(metadata),
        Err(e) => {
            c.problem(path, e);
            None
        }
    }
}

/// The platform's LTI client, when it names one: the token URL and `aud` default to the
/// platform's token URL, as Canvas wants them.
fn lti_client(
    c: &mut Checker<'_>,
    key: &str,
    p: &PlatformSection,
    token_url: Option<&Url>,
) -> Option<Option<LtiClient>> {
    let Some(client_id) = &p.lti_client_id else {
        for (name, set) in [
            ("lti_token_url", p.lti_token_url.is_some()),
            ("lti_token_aud", p.lti_token_aud.is_some()),
        ] {
            if set {
                c.problem(format!("{key}.{name}"), "needs lti_client_id");
            }
        }
        return Some(None);
    };
    if client_id.is_empty() {
        c.problem(format!("{key}.lti_client_id"), "must not be empty");
        return None;
    }
    let url = match &p.lti_token_url {
        Some(given) => c.http_url(&format!("{key}.lti_token_url"), given)?,
        None => match token_url {
            Some(url) => url.clone(),
            None => {
                c.problem(
                    format!("{key}.lti_token_url"),
                    "is required: the platform has no token_url to default to",
                );
                return None;
            }
        },
    };
    let aud = p.lti_token_aud.clone().unwrap_or_else(|| url.to_string());
    Some(Some(LtiClient {
        client_id: client_id.clone(),
        token_url: url,
        aud,
    }))
}

/// `client_auth` as configured, else the first secret-based method the metadata lists,
/// else the kind's own.
fn client_auth(
    c: &mut Checker<'_>,
    key: &str,
    p: &PlatformSection,
    provider: Option<&dyn Provider>,
    metadata: Option<&Metadata>,
) -> Option<ClientAuth> {
    let path = format!("{key}.client_auth");
    let named = |name: &str| match name {
        "client_secret_basic" => Some(ClientAuth::Basic),
        "client_secret_post" => Some(ClientAuth::Form),
        _ => None,
    };
    if let Some(given) = &p.client_auth {
        let Some(auth) = named(given) else {
            c.problem(
                path,
                format!("{given:?} is not one of client_secret_basic, client_secret_post"),
            );
            return None;
        };
        if let Some(m) = metadata {
            if !m.secret_auth_methods().contains(&given.as_str()) {
                c.problem(path, format!("the issuer's metadata does not list {given}"));
                return None;
            }
        }
        return Some(auth);
    }
    if let Some(m) = metadata {
        let Some(first) = m.secret_auth_methods().first().and_then(|m| named(m)) else {
            c.problem(
                format!("{key}.issuer"),
                "the token endpoint takes neither client_secret_basic nor client_secret_post; \
                 lms-proxy authenticates with a client secret",
            );
            return None;
        };
        return Some(first);
    }
    provider.map(|p| p.client_auth())
}

fn load_ca_certs(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut reader = std::io::BufReader::new(data.as_slice());
    let mut certs = Vec::new();
    let mut store = rustls::RootCertStore::empty();
    for item in rustls_pemfile::certs(&mut reader) {
        let der = item.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
        // Checking each certificate here keeps a bad file from failing later, per connection.
        store
            .add(der.clone())
            .map_err(|e| format!("{}: not a usable CA certificate: {e}", path.display()))?;
        certs.push(der.to_vec());
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}
