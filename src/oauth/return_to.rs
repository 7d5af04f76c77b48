//! Where the browser may be sent back to. A `return_to` must sit under one of the tool's
//! listed prefixes, compared as parsed URLs (same origin, path under the prefix's path), so
//! `https://quiz.example.edu.evil.com/` never passes for `https://quiz.example.edu`.

use url::Url;

use crate::config::Tool;

pub fn allowed(tool: &Tool, candidate: &str) -> Option<Url> {
    let url = Url::parse(candidate).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    tool.return_to
        .iter()
        .any(|prefix| under(prefix, &url))
        .then_some(url)
}

fn under(prefix: &Url, url: &Url) -> bool {
    if prefix.origin() != url.origin() {
        return false;
    }
    let base = prefix.path();
    let path = url.path();
    if base.ends_with('/') {
        path.starts_with(base)
    } else {
        path == base
            || path
                .strip_prefix(base)
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The return_to with one more query parameter (`lms_proxy_error=...`).
pub fn with_param(url: &Url, name: &str, value: &str) -> String {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(name, value);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolId;

    fn tool(prefixes: &[&str]) -> Tool {
        Tool {
            id: ToolId::new("quiz"),
            jwt_key: None,
            api_key_hashes: vec![],
            platforms: vec![],
            return_to: prefixes.iter().map(|p| Url::parse(p).unwrap()).collect(),
            export_tokens: false,
        }
    }

    #[test]
    fn only_urls_under_a_listed_prefix() {
        let t = tool(&["https://quiz.example.edu/", "https://app.example.edu/lti"]);
        assert!(allowed(&t, "https://quiz.example.edu/").is_some());
        assert!(allowed(&t, "https://quiz.example.edu/course/1?x=2").is_some());
        assert!(allowed(&t, "https://app.example.edu/lti").is_some());
        assert!(allowed(&t, "https://app.example.edu/lti/launch").is_some());
        for bad in [
            "https://app.example.edu/ltix",
            "https://quiz.example.edu.evil.com/",
            "http://quiz.example.edu/",
            "https://quiz.example.edu:8443/",
            "https://user@quiz.example.edu/",
            "javascript:alert(1)",
            "//quiz.example.edu/",
            "/relative",
        ] {
            assert!(allowed(&t, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn adds_a_parameter() {
        let u = Url::parse("https://q.example.edu/back?a=1").unwrap();
        assert_eq!(
            with_param(&u, "lms_proxy_error", "access_denied"),
            "https://q.example.edu/back?a=1&lms_proxy_error=access_denied"
        );
    }
}
