//! The paths the proxy answers itself, written once: the table below decides which
//! endpoint a request is for (`proxy::endpoints` runs it), which paths win over every route,
//! and which route prefixes `check` refuses.

/// One of the proxy's own endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /oauth/start/{platform}`: a browser starts consent.
    OAuthStart,
    /// `GET /oauth/callback/{platform}`: the LMS sends the browser back.
    OAuthCallback,
    /// `GET /api/oauth/status/{platform}`: is the tool's user connected?
    Status,
    /// `GET /api/oauth/access-token/{platform}`: the raw token, for tools allowed to export.
    AccessToken,
    /// `DELETE /api/oauth/token/{platform}`: disconnect the user.
    Revoke,
    /// `GET /healthz`: the process answers.
    Health,
    /// `GET /readyz`: the store answers too.
    Ready,
    /// `GET /.well-known/jwks.json`: the LTI signing keys' public halves.
    Jwks,
}

/// Which methods an endpoint takes.
#[derive(Clone, Copy)]
enum Methods {
    /// `GET`, and `HEAD` with it.
    Get,
    Delete,
}

/// `path` is either exact (`/healthz`) or ends in `/` and takes one more segment, the
/// platform id. `namespace` is what no route may claim, now or for endpoints to come.
struct Entry {
    path: &'static str,
    namespace: &'static str,
    methods: Methods,
    endpoint: Endpoint,
}

const TABLE: [Entry; 8] = [
    Entry {
        path: "/oauth/start/",
        namespace: "/oauth/",
        methods: Methods::Get,
        endpoint: Endpoint::OAuthStart,
    },
    Entry {
        path: "/oauth/callback/",
        namespace: "/oauth/",
        methods: Methods::Get,
        endpoint: Endpoint::OAuthCallback,
    },
    Entry {
        path: "/api/oauth/status/",
        namespace: "/api/oauth/",
        methods: Methods::Get,
        endpoint: Endpoint::Status,
    },
    Entry {
        path: "/api/oauth/access-token/",
        namespace: "/api/oauth/",
        methods: Methods::Get,
        endpoint: Endpoint::AccessToken,
    },
    Entry {
        path: "/api/oauth/token/",
        namespace: "/api/oauth/",
        methods: Methods::Delete,
        endpoint: Endpoint::Revoke,
    },
    Entry {
        path: "/healthz",
        namespace: "/healthz",
        methods: Methods::Get,
        endpoint: Endpoint::Health,
    },
    Entry {
        path: "/readyz",
        namespace: "/readyz",
        methods: Methods::Get,
        endpoint: Endpoint::Ready,
    },
    Entry {
        path: "/.well-known/jwks.json",
        namespace: "/.well-known/",
        methods: Methods::Get,
        endpoint: Endpoint::Jwks,
    },
];

/// The namespaces the proxy keeps for itself, each once, in table order.
pub fn reserved() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for entry in &TABLE {
        if !out.contains(&entry.namespace) {
            out.push(entry.namespace);
        }
    }
    out
}

/// Whether `path` is the proxy's own: inside a namespace ending in `/` (or that namespace
/// without its slash), or exactly a namespace that does not.
pub fn is_reserved(path: &str) -> bool {
    TABLE.iter().any(|entry| {
        let ns = entry.namespace;
        match ns.strip_suffix('/') {
            Some(bare) => path.starts_with(ns) || path == bare,
            None => path == ns,
        }
    })
}

/// The endpoint for a request and its platform segment (empty for exact paths); `None` when
/// no endpoint takes that method and path.
pub fn find<'a>(method: &http::Method, path: &'a str) -> Option<(Endpoint, &'a str)> {
    TABLE.iter().find_map(|entry| {
        let method_ok = match entry.methods {
            Methods::Get => method == http::Method::GET || method == http::Method::HEAD,
            Methods::Delete => method == http::Method::DELETE,
        };
        if !method_ok {
            return None;
        }
        if entry.path.ends_with('/') {
            let platform = path.strip_prefix(entry.path)?;
            (!platform.is_empty() && !platform.contains('/')).then_some((entry.endpoint, platform))
        } else {
            (path == entry.path).then_some((entry.endpoint, ""))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn the_table_decides_endpoints_and_reserved_paths() {
        assert_eq!(
            find(&Method::GET, "/oauth/start/canvas"),
            Some((Endpoint::OAuthStart, "canvas"))
        );
        assert_eq!(
            find(&Method::DELETE, "/api/oauth/token/canvas"),
            Some((Endpoint::Revoke, "canvas"))
        );
        assert_eq!(find(&Method::GET, "/api/oauth/token/canvas"), None);
        assert_eq!(
            find(&Method::HEAD, "/healthz"),
            Some((Endpoint::Health, ""))
        );
        assert_eq!(find(&Method::GET, "/oauth/start/a/b"), None);
        assert_eq!(
            find(&Method::GET, "/.well-known/jwks.json"),
            Some((Endpoint::Jwks, ""))
        );
        assert_eq!(find(&Method::GET, "/oauth/start/"), None);
        assert_eq!(
            reserved(),
            [
                "/oauth/",
                "/api/oauth/",
                "/healthz",
                "/readyz",
                "/.well-known/"
            ]
        );
    }

    #[test]
    fn reserved_paths() {
        for p in [
            "/oauth/start/canvas",
            "/oauth",
            "/api/oauth/status/x",
            "/healthz",
            "/readyz",
        ] {
            assert!(is_reserved(p), "{p}");
        }
        for p in [
            "/oauthx",
            "/api/oauthy",
            "/healthz/x",
            "/canvas/oauth/start",
        ] {
            assert!(!is_reserved(p), "{p}");
        }
    }
}
