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

impl AllowRule {
    /// Any method on `segments` and everything under them: an LMS kind's API by default.
    pub fn everything_under(segments: &[&str]) -> Self {
        let mut pattern: Vec<Segment> = segments
            .iter()
            .map(|s| Segment::Literal(s.to_string()))
            .collect();
        pattern.push(Segment::Many);
        Self {
            method: MethodMatch::Any,
            pattern: PathPattern(pattern),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
