//! Which platform a request is for: longest whole-segment prefix wins, and the proxy's own
//! paths win over every prefix.

use std::sync::Arc;

use crate::config::{percent_decode, AllowRule, Config, MethodMatch, Platform, Segment};

use crate::config::RESERVED_PATHS;

#[derive(Debug)]
pub struct RouteEntry {
    pub prefix: String,
    pub platform: Arc<Platform>,
    pub allow: Option<Vec<AllowRule>>,
    /// `public_url + prefix`: what LMS URLs are rewritten to, computed once.
    pub public_base: String,
}

/// A matched route and the path left after its prefix (`/` when nothing is left).
pub struct RouteMatch<'a> {
    pub route: &'a Arc<RouteEntry>,
    pub rest: &'a str,
}

pub struct RouteTable {
    /// Longest prefix first, so the first hit is the best.
    routes: Vec<Arc<RouteEntry>>,
}

impl RouteTable {
    pub fn new(config: &Config) -> Self {
        let platforms = config.platforms_by_id();
        let mut routes: Vec<Arc<RouteEntry>> = config
            .routes
            .iter()
            .filter_map(|r| {
                Some(Arc::new(RouteEntry {
                    prefix: r.prefix.clone(),
                    platform: Arc::clone(platforms.get(&r.platform)?),
                    allow: r.allow.clone().or_else(|| {
                        platforms
                            .get(&r.platform)
                            .and_then(|p| p.kind.default_allow())
                    }),
                    public_base: public_base(&config.server.public_url, &r.prefix),
                }))
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    pub fn find<'a>(&'a self, path: &'a str) -> Option<RouteMatch<'a>> {
        self.routes.iter().find_map(|route| {
            let rest = strip_prefix(path, &route.prefix)?;
            Some(RouteMatch { route, rest })
        })
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

/// Reserved paths (`/oauth/...`, `/api/oauth/...`, `/healthz`, `/readyz`) are the proxy's own.
pub fn is_reserved(path: &str) -> bool {
    RESERVED_PATHS.iter().any(|reserved| {
        if reserved.ends_with('/') {
            path.starts_with(reserved) || path == reserved.trim_end_matches('/')
        } else {
            path == *reserved
        }
    })
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
        if self.platform.kind.is_own_endpoint(rest) {
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
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    matches(&rule.pattern.0, &segments)
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
    use crate::config::PlatformKind;
    use http::Method;

    fn entry(allow: &[&str]) -> RouteEntry {
        let platform = crate::testing::platform("canvas", "https://canvas.example.edu");
        RouteEntry {
            prefix: "/canvas".into(),
            platform,
            allow: Some(allow.iter().map(|a| AllowRule::parse(a).unwrap()).collect()),
            public_base: "https://proxy.example.edu/canvas".into(),
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(strip_prefix("/canvas", "/canvas"), Some("/"));
        assert_eq!(strip_prefix("/canvas/api/v1", "/canvas"), Some("/api/v1"));
        assert_eq!(strip_prefix("/canvasx/api", "/canvas"), None);
        assert_eq!(strip_prefix("/anything", "/"), Some("/anything"));
    }

    #[test]
    fn longest_prefix_wins() {
        let table = RouteTable {
            routes: vec![
                Arc::new(RouteEntry {
                    prefix: "/canvas/beta".into(),
                    platform: crate::testing::platform("beta", "https://b.example.edu"),
                    allow: None,
                    public_base: String::new(),
                }),
                Arc::new(RouteEntry {
                    prefix: "/canvas".into(),
                    platform: crate::testing::platform("canvas", "https://c.example.edu"),
                    allow: None,
                    public_base: String::new(),
                }),
                Arc::new(RouteEntry {
                    prefix: "/".into(),
                    platform: crate::testing::platform("root", "https://r.example.edu"),
                    allow: None,
                    public_base: String::new(),
                }),
            ],
        };
        let m = table.find("/canvas/beta/api").unwrap();
        assert_eq!((m.route.platform.id.as_str(), m.rest), ("beta", "/api"));
        let m = table.find("/canvas/betamax").unwrap();
        assert_eq!(
            (m.route.platform.id.as_str(), m.rest),
            ("canvas", "/betamax")
        );
        assert_eq!(
            table.find("/other").unwrap().route.platform.id.as_str(),
            "root"
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
        e.allow = PlatformKind::Canvas.default_allow();
        assert!(e.allows(&Method::POST, "/api/v1/courses/1/discussion_topics"));
        assert!(!e.allows(&Method::GET, "/courses/1"));
        assert!(!e.allows(&Method::DELETE, "/login/oauth2/token"));
        e.allow = PlatformKind::OAuth2.default_allow();
        assert!(e.allows(&Method::GET, "/anything/at/all"));
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
