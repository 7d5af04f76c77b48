//! Any OAuth2 server: endpoints from the config, client credentials in the form body, RFC
//! 7009 revocation, a dead token is a 401 with `WWW-Authenticate` (RFC 6750), and no known
//! API prefix, so routes permit every path unless they say otherwise.

use url::Url;

use super::{ClientAuth, Endpoints, Provider};

#[derive(Debug)]
pub struct OAuth2;

impl Provider for OAuth2 {
    fn kind(&self) -> &'static str {
        "oauth2"
    }

    fn endpoints(&self, _base: &Url) -> Endpoints {
        Endpoints::default()
    }

    fn needs_endpoints(&self) -> bool {
        true
    }

    fn client_auth(&self) -> ClientAuth {
        ClientAuth::Form
    }

    fn api_prefix(&self) -> Option<&'static [&'static str]> {
        None
    }
}
