//! Builders shared by unit tests.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::config::{LtiClient, Platform, Upstream};
use crate::types::{PlatformId, Secret};

pub fn platform(id: &str, base: &str) -> Arc<Platform> {
    platform_with_lti(id, base, None)
}

/// A Canvas platform with an LTI client, or without one.
pub fn platform_with_lti(id: &str, base: &str, lti: Option<LtiClient>) -> Arc<Platform> {
    let base_url = Url::parse(base).unwrap();
    Arc::new(Platform {
        id: PlatformId::new(id),
        provider: crate::provider::for_kind("canvas").unwrap(),
        upstream: Upstream::from_base_url(&base_url).unwrap(),
        authorize_url: base_url.join("/login/oauth2/auth").unwrap(),
        token_url: base_url.join("/login/oauth2/token").unwrap(),
        revoke_url: None,
        base_url,
        client_id: "1".into(),
        client_secret: Secret::new("s"),
        scopes: vec![],
        pkce: true,
        client_auth: crate::provider::ClientAuth::Form,
        who_consented: None,
        lti,
        ca_certs: None,
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(60),
    })
}
