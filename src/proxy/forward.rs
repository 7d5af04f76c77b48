//! What the LMS receives: the path under its base URL, the query without the tool's
//! `access_token`, and the user's token in place of the tool's credential.

use http::header::{HeaderName, AUTHORIZATION, COOKIE, HOST, PROXY_AUTHORIZATION};
use pingora::http::RequestHeader;

use crate::admission::Admitted;
use crate::identity::X_LMS_USER;

/// Tool-side headers that must never reach the LMS, besides `Authorization`, which is
/// replaced: inserting a header drops every earlier value of it.
const STRIPPED_HEADERS: [HeaderName; 3] = [X_LMS_USER, COOKIE, PROXY_AUTHORIZATION];

/// `base_path + rest`, then the query with every `access_token` parameter removed.
pub fn upstream_path(base_path: &str, rest: &str, query: Option<&str>) -> String {
    let mut out =
        String::with_capacity(base_path.len() + rest.len() + query.map_or(0, str::len) + 1);
    out.push_str(base_path);
    out.push_str(rest);
    if let Some(query) = query {
        let mut first = true;
        for pair in query.split('&') {
            if pair.is_empty() || is_access_token(pair) {
                continue;
            }
            out.push(if first { '?' } else { '&' });
            out.push_str(pair);
            first = false;
        }
    }
    out
}

/// Names are compared decoded, so `access%5Ftoken=` is caught too.
fn is_access_token(pair: &str) -> bool {
    let name = pair.split('=').next().unwrap_or("");
    if !name.contains('%') && !name.contains('+') {
        return name == "access_token";
    }
    url::form_urlencoded::parse(name.as_bytes())
        .next()
        .is_some_and(|(decoded, _)| decoded == "access_token")
}

/// Rewrites the request that goes upstream. Fails only on a URI `http` refuses, which the
/// caller answers as a bad request.
pub fn prepare(upstream: &mut RequestHeader, admitted: &Admitted) -> Result<(), http::Error> {
    let platform = &admitted.route.platform;
    let path = upstream_path(
        &platform.upstream.base_path,
        &admitted.rest,
        upstream.uri.query(),
    );
    let uri = http::Uri::try_from(path)?;
    upstream.set_uri(uri);
    for name in &STRIPPED_HEADERS {
        // Looked up first: pingora's remove also rewrites its header-case map, and these
        // headers are rarely there.
        if upstream.headers.contains_key(name) {
            upstream.remove_header(name);
        }
    }
    let token = admitted.token.access_token.expose();
    let mut bearer = String::with_capacity(7 + token.len());
    bearer.push_str("Bearer ");
    bearer.push_str(token);
    let _ = upstream.insert_header(AUTHORIZATION, bearer);
    let _ = upstream.insert_header(HOST, platform.upstream.host_header.as_str());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_base_path_and_strips_access_token() {
        assert_eq!(
            upstream_path("", "/api/v1/courses", None),
            "/api/v1/courses"
        );
        assert_eq!(
            upstream_path(
                "/lms",
                "/api/v1/courses",
                Some("page=2&access_token=abc&per_page=10")
            ),
            "/lms/api/v1/courses?page=2&per_page=10"
        );
        assert_eq!(upstream_path("", "/x", Some("access_token=abc")), "/x");
        assert_eq!(
            upstream_path("", "/x", Some("access%5Ftoken=abc&a=1")),
            "/x?a=1"
        );
        assert_eq!(
            upstream_path("", "/x", Some("include[]=a&include[]=b")),
            "/x?include[]=a&include[]=b"
        );
        assert_eq!(
            upstream_path("", "/x", Some("my_access_token=1")),
            "/x?my_access_token=1"
        );
    }
}
