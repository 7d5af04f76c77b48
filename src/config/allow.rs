//! Route allowlist entries, `METHOD PATTERN`, parsed once at start so matching a request is a
//! walk over segments with no allocation.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodMatch {
    Any,
    /// `GET` also allows `HEAD`, the way every HTTP client expects.
    Exact(http::Method),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: any number of segments, zero included.
    Many,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern(pub Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    pub method: MethodMatch,
    pub pattern: PathPattern,
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            MethodMatch::Any => f.write_str("*")?,
            MethodMatch::Exact(m) => f.write_str(m.as_str())?,
        }
        f.write_str(" ")?;
        for segment in &self.pattern.0 {
            f.write_str("/")?;
            match segment {
                Segment::Literal(s) => f.write_str(s)?,
                Segment::One => f.write_str("*")?,
                Segment::Many => f.write_str("**")?,
            }
        }
        Ok(())
    }
}

impl AllowRule {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let mut parts = entry.split_whitespace();
        let (Some(method), Some(pattern), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "{entry:?} is not `METHOD PATTERN`, e.g. \"GET /api/v1/courses/**\""
            ));
        };
        let method = if method == "*" {
            MethodMatch::Any
        } else {
            let upper = method.to_ascii_uppercase();
            if upper != method {
                return Err(format!("method {method:?} must be upper case ({upper})"));
            }
            let parsed = http::Method::from_bytes(method.as_bytes())
                .map_err(|_| format!("{method:?} is not an HTTP method"))?;
            MethodMatch::Exact(parsed)
        };
        let Some(rest) = pattern.strip_prefix('/') else {
            return Err(format!("pattern {pattern:?} must start with '/'"));
        };
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for segment in rest.split('/') {
                segments.push(match segment {
                    "*" => Segment::One,
                    "**" => Segment::Many,
                    "" => return Err(format!("pattern {pattern:?} has an empty segment")),
                    s if s.contains('*') => {
                        return Err(format!(
                            "pattern {pattern:?}: '*' must be a whole segment (\"*\" or \"**\")"
                        ))
                    }
                    s => Segment::Literal(s.to_string()),
                });
            }
        }
        Ok(Self {
            method,
            pattern: PathPattern(segments),
        })
    }
}

impl AllowRule {
    /// Whether this rule names `path` exactly (no wildcard) for `method`: the only kind of
    /// rule that opens one of the LMS's own login or token endpoints to a tool.
    pub fn names_exactly(&self, method: &http::Method, path: &str) -> bool {
        let method_ok = match &self.method {
            MethodMatch::Any => true,
            MethodMatch::Exact(m) => {
                m == method || (*m == http::Method::GET && method == http::Method::HEAD)
            }
        };
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        method_ok
            && self.pattern.0.iter().all(|p| match p {
                Segment::Literal(lit) => segments.next() == Some(lit.as_str()),
                Segment::One | Segment::Many => false,
            })
            && segments.next().is_none()
    }
}

/// A rule from code, for the per-kind defaults; the patterns there are known to parse.
fn rule(method: MethodMatch, pattern: &[&str]) -> AllowRule {
    AllowRule {
        method,
        pattern: PathPattern(
            pattern
                .iter()
                .map(|s| match *s {
                    "**" => Segment::Many,
                    "*" => Segment::One,
                    lit => Segment::Literal(lit.to_string()),
                })
                .collect(),
        ),
    }
}

impl super::PlatformKind {
    /// What a route without `allow` permits: the kind's REST API and nothing else, so the
    /// LMS's web pages, login and token endpoints are not on a tool's path by default.
    /// Generic OAuth2 has no known API prefix: everything.
    pub fn default_allow(self) -> Option<Vec<AllowRule>> {
        let api: &[&str] = match self {
            Self::Canvas => &["api", "**"],
            Self::Brightspace => &["d2l", "api", "**"],
            Self::Blackboard => &["learn", "api", "**"],
            Self::OAuth2 => return None,
        };
        Some(vec![rule(MethodMatch::Any, api)])
    }

    /// The LMS's own login and OAuth endpoints, refused even under a wildcard rule: Canvas
    /// `/login/**` would revoke the user's grant behind the proxy's back
    /// (`DELETE /login/oauth2/token`) or turn the token into a web session
    /// (`/login/session_token`). Compared decoded and without regard to case, since the LMS
    /// may route `%6Cogin` or `LOGIN` the same way.
    pub fn is_own_endpoint(self, path: &str) -> bool {
        let prefix: &[&str] = match self {
            Self::Canvas => &["login"],
            Self::Blackboard => &["learn", "api", "public", "v1", "oauth2"],
            Self::Brightspace | Self::OAuth2 => return false,
        };
        let decoded;
        let path = if path.contains('%') {
            decoded = percent_decode(path);
            decoded.as_str()
        } else {
            path
        };
        let mut segments = path.split(['/', '\\']).filter(|s| !s.is_empty());
        prefix
            .iter()
            .all(|p| segments.next().is_some_and(|s| s.eq_ignore_ascii_case(p)))
    }
}

/// Percent-decodes a path (not `+`: that is a space only in queries); bytes that do not
/// form UTF-8 are replaced, which can only make a path match less.
pub fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PlatformKind;

    #[test]
    fn canvas_login_is_its_own_endpoint_however_spelled() {
        for path in [
            "/login/oauth2/token",
            "/login",
            "/LOGIN/session_token",
            "/%6Cogin/session_token",
            "//login/oauth2/token",
            "/%4C%4F%47%49%4E/x",
        ] {
            assert!(PlatformKind::Canvas.is_own_endpoint(path), "{path}");
        }
        for path in ["/api/v1/login", "/loginx", "/api/v1/courses"] {
            assert!(!PlatformKind::Canvas.is_own_endpoint(path), "{path}");
        }
        assert!(PlatformKind::Blackboard.is_own_endpoint("/learn/api/public/v1/oauth2/token"));
        assert!(!PlatformKind::Blackboard.is_own_endpoint("/learn/api/public/v1/courses"));
        assert!(!PlatformKind::OAuth2.is_own_endpoint("/login"));
    }

    #[test]
    fn only_an_exact_rule_names_a_path() {
        let exact = AllowRule::parse("DELETE /login/oauth2/token").unwrap();
        let get = http::Method::GET;
        let delete = http::Method::DELETE;
        assert!(exact.names_exactly(&delete, "/login/oauth2/token"));
        assert!(!exact.names_exactly(&get, "/login/oauth2/token"));
        assert!(!exact.names_exactly(&delete, "/login/oauth2/token/x"));
        assert!(!exact.names_exactly(&delete, "/login/oauth2"));
        let wild = AllowRule::parse("* /login/**").unwrap();
        assert!(!wild.names_exactly(&delete, "/login/oauth2/token"));
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("/a%2Fb/%2e%2E/%zz/%4"), "/a/b/../%zz/%4");
    }

    #[test]
    fn parses_methods_and_wildcards() {
        let rule = AllowRule::parse("POST /api/v1/courses/*/discussion_topics").unwrap();
        assert_eq!(rule.method, MethodMatch::Exact(http::Method::POST));
        assert_eq!(
            rule.pattern.0,
            vec![
                Segment::Literal("api".into()),
                Segment::Literal("v1".into()),
                Segment::Literal("courses".into()),
                Segment::One,
                Segment::Literal("discussion_topics".into()),
            ]
        );
        assert_eq!(rule.to_string(), "POST /api/v1/courses/*/discussion_topics");
        assert_eq!(AllowRule::parse("* /**").unwrap().method, MethodMatch::Any);
    }

    #[test]
    fn refuses_malformed_entries() {
        for bad in [
            "GET",
            "GET api/v1",
            "get /api",
            "GET /api//x",
            "GET /api/v*",
            "GET /a /b",
        ] {
            assert!(AllowRule::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
