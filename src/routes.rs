//! Which platform a request is for: a route for the request's host wins over one for every
//! host, then the longest whole-segment prefix. The proxy's own paths (`own_paths`) are
//! taken out before any route is looked at.

use std::sync::Arc;

use crate::config::{AllowRule, Config, MethodMatch, Platform, RouteGrant, Segment};
use crate::identity::Origins;
use crate::percent::percent_decode;
use crate::provider;

#[derive(Debug)]
pub struct RouteEntry {
    /// The host this route answers on (lower case), or `None` for every host.
    pub host: Option<String>,
    pub prefix: String,
    pub platform: Arc<Platform>,
    pub allow: Option<Vec<AllowRule>>,
    /// A user's grant, or the platform's LTI service token.
    pub grant: RouteGrant,
    /// The route's public origin + prefix: what LMS URLs are rewritten to, computed once.
    pub public_base: String,
    /// The route's public origin among the proxy's origins: a tool JWT must name it or
    /// `public_url` in `aud`.
    pub origin: Origins,
}

/// A matched route and the path left after its prefix (`/` when nothing is left).
pub struct RouteMatch<'a> {
    pub route: &'a Arc<RouteEntry>,
    pub rest: &'a str,
}

pub struct RouteTable {
    /// Host routes first, then the rest; longest prefix first within each, so the first hit
    /// is the best.
    routes: Vec<Arc<RouteEntry>>,
    /// Whether any route has a host: without one, the `Host` header is never looked at.
    by_host: bool,
}

impl RouteTable {
    pub fn new(config: &Config) -> Self {
        let platforms = config.platforms_by_id();
        let origins = config.origins();
        let mut routes: Vec<Arc<RouteEntry>> = config
            .routes
            .iter()
            .filter_map(|r| {
                let platform = platforms.get(&r.platform)?;
                let origin = match &r.host {
                    Some(host) => config.server.origin_for_host(host),
                    None => config.server.public_url.clone(),
                };
                let index = origins.iter().position(|o| *o == origin).unwrap_or(0);
                Some(Arc::new(RouteEntry {
                    host: r.host.clone(),
                    prefix: r.prefix.clone(),
                    platform: Arc::clone(platform),
                    allow: r.allow.clone().or_else(|| default_allow(platform)),
                    grant: r.grant.clone(),
                    public_base: public_base(&origin, &r.prefix),
                    origin: Origins::one(index),
                }))
            })
            .collect();
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.prefix.len())));
        let by_host = routes.iter().any(|r| r.host.is_some());
        Self { routes, by_host }
    }

    /// The route for a request to `host` (its `Host` header, port and all) and `path`: a
    /// route for that host if one matches, else a route for every host.
    pub fn find<'a>(&'a self, host: Option<&str>, path: &'a str) -> Option<RouteMatch<'a>> {
        let host = if self.by_host {
            host.map(host_name)
        } else {
            None
        };
        self.routes.iter().find_map(|route| {
            if let Some(route_host) = &route.host {
                if !host.is_some_and(|h| h.eq_ignore_ascii_case(route_host)) {
                    return None;
                }
            }
            let rest = strip_prefix(path, &route.prefix)?;
            Some(RouteMatch { route, rest })
        })
    }

    /// Whether any route matches on the host: only then is a request's `Host` looked at.
    pub fn by_host(&self) -> bool {
        self.by_host
    }

    /// The origin a request to `host` is addressed to: a host route's, or `public_url`'s.
    pub fn origin_of(&self, host: Option<&str>) -> Origins {
        let Some(host) = host.filter(|_| self.by_host).map(host_name) else {
            return Origins::PUBLIC_URL;
        };
        self.routes
            .iter()
            .find(|r| {
                r.host
                    .as_deref()
                    .is_some_and(|h| h.eq_ignore_ascii_case(host))
            })
            .map_or(Origins::PUBLIC_URL, |r| r.origin)
    }
}

/// What a route without `allow` permits: the LMS kind's API and nothing else, so its web
/// pages, login and token endpoints are not on a tool's path by default. A kind without a
/// known API prefix (generic OAuth2): everything.
fn default_allow(platform: &Platform) -> Option<Vec<AllowRule>> {
    let api = platform.provider.api_prefix()?;
    Some(vec![AllowRule::everything_under(api)])
}

/// The name in a `Host` header value, without its port (`[::1]:8080` gives `[::1]`).
pub fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

fn public_base(public_url: &str, prefix: &str) -> String {
    if prefix == "/" {
        public_url.to_string()
    } else {
        format!("{public_url}{prefix}")
    }
}

/// `/canvas` matches `/canvas` and `/canvas/...`, never `/canvasx`.
fn strip_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

/// Why a path may not go to the LMS, if it may not. It is judged as the LMS will see it,
/// percent-decoded: a `.` or `..` segment (split on `/` and `\\`), a backslash or a NUL could
/// let it slip past the allowlist once the LMS or a server in front of it normalises the
/// path. `%2F` inside a segment is not a separator for the allowlist (Canvas SIS ids use it)
/// but counts as one here, so `..%2F` is refused too.
pub fn path_problem(path: &str) -> Option<&'static str> {
    // Most API paths have none of these bytes: one scan, no allocation.
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return None;
    }
    let decoded = if path.contains('%') {
        std::borrow::Cow::Owned(percent_decode(path))
    } else {
        std::borrow::Cow::Borrowed(path)
    };
    if decoded.contains('\\') {
        return Some("the path must not contain a backslash");
    }
    if decoded.contains('\0') {
        return Some("the path must not contain a NUL byte");
    }
    decoded
        .split('/')
        .any(|segment| segment == "." || segment == "..")
        .then_some("the path must not contain '.' or '..' segments")
}

impl RouteEntry {
    /// The LMS's own login and token endpoints need a rule naming them exactly; any other
    /// path needs a matching rule, or no allowlist at all (generic OAuth2's default).
    pub fn allows(&self, method: &http::Method, rest: &str) -> bool {
        if provider::is_own_endpoint(self.platform.provider, rest) {
            return self
                .allow
                .as_ref()
                .is_some_and(|rules| rules.iter().any(|rule| rule.names_exactly(method, rest)));
        }
        match &self.allow {
            None => true,
            Some(rules) => rules.iter().any(|rule| rule_allows(rule, method, rest)),
        }
    }
}

fn rule_allows(rule: &AllowRule, method: &http::Method, path: &str) -> bool {
    let method_ok = match &rule.method {
        MethodMatch::Any => true,
        MethodMatch::Exact(m) => {
            m == method || (*m == http::Method::GET && method == http::Method::HEAD)
        }
    };
    if !method_ok {
        return false;
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let pattern = &rule.pattern.0;
    match pattern.iter().position(|s| *s == Segment::Many) {
        // No `**`, or one at the end (every default allowlist): one pass, no allocation.
        None => {
            pattern
                .iter()
                .all(|p| segments.next().is_some_and(|s| one(p, s)))
                && segments.next().is_none()
        }
        Some(last) if last + 1 == pattern.len() => pattern[..last]
            .iter()
            .all(|p| segments.next().is_some_and(|s| one(p, s))),
        Some(_) => matches(pattern, &segments.collect::<Vec<_>>()),
    }
}

/// Whether a literal or `*` pattern segment matches one path segment.
fn one(pattern: &Segment, segment: &str) -> bool {
    match pattern {
        Segment::Literal(lit) => lit == segment,
        _ => true,
    }
}

fn matches(pattern: &[Segment], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((Segment::Many, rest)) => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((segment, rest)) => match path.split_first() {
            None => false,
            Some((first, path_rest)) => {
                let ok = match segment {
                    Segment::Literal(lit) => lit == first,
                    _ => true,
                };
                ok && matches(rest, path_rest)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn entry(allow: &[&str]) -> RouteEntry {
        let platform = crate::testing::platform("canvas", "https://canvas.example.edu");
        RouteEntry {
            host: None,
            prefix: "/canvas".into(),
            platform,
            allow: Some(allow.iter().map(|a| AllowRule::parse(a).unwrap()).collect()),
            grant: RouteGrant::User,
            public_base: "https://proxy.example.edu/canvas".into(),
            origin: Origins::PUBLIC_URL,
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(strip_prefix("/canvas", "/canvas"), Some("/"));
        assert_eq!(strip_prefix("/canvas/api/v1", "/canvas"), Some("/api/v1"));
        assert_eq!(strip_prefix("/canvasx/api", "/canvas"), None);
        assert_eq!(strip_prefix("/anything", "/"), Some("/anything"));
    }

    fn table(routes: &[(Option<&str>, &str, &str)]) -> RouteTable {
        let routes: Vec<Arc<RouteEntry>> = routes
            .iter()
            .enumerate()
            .map(|(i, (host, prefix, platform))| {
                Arc::new(RouteEntry {
                    host: host.map(str::to_string),
                    prefix: prefix.to_string(),
                    platform: crate::testing::platform(platform, "https://lms.example.edu"),
                    allow: None,
                    grant: RouteGrant::User,
                    public_base: String::new(),
                    origin: if host.is_some() {
                        Origins::one(i + 1)
                    } else {
                        Origins::PUBLIC_URL
                    },
                })
            })
            .collect();
        let mut routes = routes;
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.prefix.len())));
        let by_host = routes.iter().any(|r| r.host.is_some());
        RouteTable { routes, by_host }
    }

    fn found(t: &RouteTable, host: Option<&str>, path: &str) -> Option<(String, String)> {
        t.find(host, path)
            .map(|m| (m.route.platform.id.to_string(), m.rest.to_string()))
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table(&[
            (None, "/canvas/beta", "beta"),
            (None, "/canvas", "canvas"),
            (None, "/", "root"),
        ]);
        assert_eq!(
            found(&t, None, "/canvas/beta/api"),
            Some(("beta".into(), "/api".into()))
        );
        assert_eq!(
            found(&t, None, "/canvas/betamax"),
            Some(("canvas".into(), "/betamax".into()))
        );
        assert_eq!(found(&t, None, "/other").unwrap().0, "root");
    }

    #[test]
    fn host_routes_win_on_their_host_only() {
        let t = table(&[
            (Some("canvas.proxy.test"), "/", "canvas"),
            (Some("d2l.proxy.test"), "/", "d2l"),
            (None, "/canvas", "by-prefix"),
        ]);
        let on = |host: &str, path: &str| found(&t, Some(host), path).map(|(p, _)| p);
        assert_eq!(
            on("canvas.proxy.test", "/api/v1/users/self").unwrap(),
            "canvas"
        );
        assert_eq!(on("CANVAS.proxy.test:8443", "/canvas/x").unwrap(), "canvas");
        assert_eq!(on("d2l.proxy.test", "/d2l/api/x").unwrap(), "d2l");
        assert_eq!(on("other.test", "/canvas/x").unwrap(), "by-prefix");
        assert_eq!(on("other.test", "/api/v1/users/self"), None);
        assert_eq!(found(&t, None, "/canvas/x").unwrap().0, "by-prefix");
        assert_eq!(t.origin_of(Some("d2l.proxy.test:80")), Origins::one(2));
        assert_eq!(t.origin_of(Some("other.test")), Origins::PUBLIC_URL);
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("a.example:8080"), "a.example");
        assert_eq!(host_name("a.example"), "a.example");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
    }

    #[test]
    fn paths_are_judged_decoded() {
        for bad in [
            "/api/../login",
            "/api/%2E%2e/login",
            "/api/.%2e/login",
            "/api/%2e./login",
            "/api/%2e",
            "/api/./x",
            "/api\\..\\login",
            "/api/v1\\x",
            "/api/%5C..%5Clogin",
            "/api/..%2Flogin",
            "/api/x%2F..%2F..%2Flogin",
            "/api/a%00b",
        ] {
            assert!(path_problem(bad).is_some(), "{bad}");
        }
        for good in [
            "/api/.x/login",
            "/api/%2e%2e%2e",
            "/api/v1/files/a..b",
            "/api/v1/courses/sis_course_id:A%2FB",
            "/api/v1/courses",
        ] {
            assert_eq!(path_problem(good), None, "{good}");
        }
    }

    #[test]
    fn own_endpoints_need_an_exact_rule() {
        let wild = entry(&["* /**"]);
        assert!(wild.allows(&Method::GET, "/api/v1/courses"));
        assert!(!wild.allows(&Method::DELETE, "/login/oauth2/token"));
        assert!(!wild.allows(&Method::GET, "/login/session_token"));
        let exact = entry(&["* /**", "GET /login/session_token"]);
        assert!(exact.allows(&Method::GET, "/login/session_token"));
        assert!(!exact.allows(&Method::DELETE, "/login/oauth2/token"));
    }

    #[test]
    fn canvas_routes_default_to_the_api() {
        let mut e = entry(&[]);
        e.allow = default_allow(&e.platform);
        assert!(e.allows(&Method::POST, "/api/v1/courses/1/discussion_topics"));
        assert!(!e.allows(&Method::GET, "/courses/1"));
        assert!(!e.allows(&Method::DELETE, "/login/oauth2/token"));
        let generic = provider::for_kind("oauth2").unwrap();
        assert!(generic.api_prefix().is_none());
    }

    #[test]
    fn allowlist_wildcards_and_methods() {
        let e = entry(&["GET /api/v1/**", "POST /api/v1/courses/*/discussion_topics"]);
        assert!(e.allows(&Method::GET, "/api/v1/courses"));
        assert!(e.allows(&Method::GET, "/api/v1"));
        assert!(e.allows(&Method::HEAD, "/api/v1/users/self"));
        assert!(!e.allows(&Method::DELETE, "/api/v1/courses/1"));
        assert!(e.allows(&Method::POST, "/api/v1/courses/7/discussion_topics"));
        assert!(!e.allows(&Method::POST, "/api/v1/courses/7/8/discussion_topics"));
        assert!(!e.allows(&Method::POST, "/api/v1/courses/discussion_topics"));
        assert!(!e.allows(&Method::GET, "/login/oauth2/token"));
        let any = entry(&["* /api/**/files"]);
        assert!(any.allows(&Method::PUT, "/api/files"));
        assert!(any.allows(&Method::DELETE, "/api/v1/users/1/files"));
        assert!(!any.allows(&Method::PUT, "/api/v1/files/1"));
    }
}
