//! What the LMS receives: the path under its base URL, the query without the tool's
//! `access_token`, and the user's token in place of the tool's credential.

use http::header::{
    HeaderName, HeaderValue, AUTHORIZATION, COOKIE, FORWARDED, HOST, PROXY_AUTHORIZATION,
};
use pingora::http::RequestHeader;

use crate::admission::Admitted;
use crate::identity::X_LMS_USER;

/// Tool-side headers that must never reach the LMS: credentials, and what would tell the
/// LMS about the tool's network or let the tool pose as someone else's client. The tool's
/// `Authorization` is handled apart: replaced, or removed when it cannot be.
const STRIPPED_HEADERS: [HeaderName; 4] = [X_LMS_USER, COOKIE, PROXY_AUTHORIZATION, FORWARDED];
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// Why a request could not be prepared for the LMS.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("the request's path cannot be forwarded: {0}")]
    BadUri(#[from] http::uri::InvalidUri),
    /// Never expected: tokens are checked where they enter. Nothing is sent when it happens.
    #[error("the LMS token cannot be placed in an Authorization header")]
    TokenNotAHeader,
}

/// `base_path + rest`, then the query with every `access_token` parameter removed.
pub fn upstream_path(base_path: &str, rest: &str, query: Option<&str>) -> String {
    let mut out =
        String::with_capacity(base_path.len() + rest.len() + query.map_or(0, str::len) + 1);
    out.push_str(base_path);
    out.push_str(rest);
    if let Some(query) = query {
        let mut first = true;
        let mut separator = '&';
        let mut rest = query;
        loop {
            let end = rest.find(['&', ';']).unwrap_or(rest.len());
            let pair = &rest[..end];
            if !pair.is_empty() && !is_access_token(pair) {
                out.push(if first { '?' } else { separator });
                out.push_str(pair);
                first = false;
            }
            let Some(next) = rest[end..].chars().next() else {
                break;
            };
            separator = next;
            rest = &rest[end + 1..];
        }
    }
    out
}

/// Names are compared decoded and case-folded, without any `[...]` suffix, and split on `;`
/// as well as `&`: `access%5Ftoken=`, `ACCESS_TOKEN=`, `access_token[]=` and
/// `;access_token=` are all a token to some server framework (Rails splits on both).
fn is_access_token(pair: &str) -> bool {
    const NAME: &str = "access_token";
    let name = pair.split('=').next().unwrap_or("");
    if !name.contains(['%', '+', '[', ' ']) {
        return name.eq_ignore_ascii_case(NAME);
    }
    let decoded = url::form_urlencoded::parse(name.as_bytes())
        .next()
        .map(|(decoded, _)| decoded.into_owned())
        .unwrap_or_default();
    let decoded = decoded.trim();
    let base = decoded.split('[').next().unwrap_or("").trim();
    base.eq_ignore_ascii_case(NAME)
}

/// Rewrites the request that goes upstream: the tool's credentials out first, then the
/// user's token in. Fails, and nothing is sent, when either step cannot be done.
pub fn prepare(upstream: &mut RequestHeader, admitted: &Admitted) -> Result<(), ForwardError> {
    let platform = &admitted.route.platform;
    let path = upstream_path(
        &platform.upstream.base_path,
        &admitted.rest,
        upstream.uri.query(),
    );
    let uri = http::Uri::try_from(path)?;
    upstream.set_uri(uri);
    // A body the proxy must rewrite has to arrive uncompressed: asked for as such.
    if platform.provider.body_link_field().is_some()
        && upstream.headers.contains_key(http::header::ACCEPT_ENCODING)
    {
        upstream.remove_header(&http::header::ACCEPT_ENCODING);
    }
    place_credentials(
        upstream,
        admitted.token.access_token.expose(),
        &platform.upstream.host_header,
    )
}

/// The tool's headers out, then the user's token and the LMS's host in. Inserting
/// `Authorization` replaces every value the tool sent; when the token cannot be inserted,
/// the tool's values are removed all the same (removing costs more than replacing in
/// pingora's header map, so it is not done first on every request).
fn place_credentials(
    upstream: &mut RequestHeader,
    token: &str,
    host: &str,
) -> Result<(), ForwardError> {
    strip_tool_headers(upstream);
    let mut bearer = String::with_capacity(7 + token.len());
    bearer.push_str("Bearer ");
    bearer.push_str(token);
    let placed = HeaderValue::try_from(bearer)
        .ok()
        .and_then(|bearer| upstream.insert_header(AUTHORIZATION, bearer).ok());
    if placed.is_none() {
        upstream.remove_header(&AUTHORIZATION);
        return Err(ForwardError::TokenNotAHeader);
    }
    upstream
        .insert_header(HOST, host)
        .map_err(|_| ForwardError::TokenNotAHeader)?;
    Ok(())
}

fn strip_tool_headers(upstream: &mut RequestHeader) {
    for name in &STRIPPED_HEADERS {
        // Looked up first: pingora's remove also rewrites its header-case map, and most of
        // these headers are rarely there.
        if upstream.headers.contains_key(name) {
            upstream.remove_header(name);
        }
    }
    if upstream.headers.contains_key(&X_REAL_IP) {
        upstream.remove_header(&X_REAL_IP);
    }
    let forwarded = |name: &HeaderName| name.as_str().starts_with("x-forwarded-");
    if upstream.headers.keys().any(forwarded) {
        let names: Vec<HeaderName> = upstream
            .headers
            .keys()
            .filter(|n| forwarded(n))
            .cloned()
            .collect();
        for name in &names {
            upstream.remove_header(name);
        }
    }
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

    fn tool_request() -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/canvas/api/v1/courses", None).unwrap();
        for (name, value) in [
            ("authorization", "Bearer tool-api-key"),
            ("x-lms-user", "u1"),
            ("cookie", "a=b"),
            ("proxy-authorization", "Basic x"),
            ("forwarded", "for=10.0.0.1"),
            ("x-forwarded-for", "10.0.0.1"),
            ("X-Forwarded-Host", "evil.example"),
            ("x-real-ip", "10.0.0.1"),
            ("accept", "application/json"),
        ] {
            req.append_header(name, value).unwrap();
        }
        req
    }

    #[test]
    fn the_tool_credential_is_replaced_and_its_network_headers_dropped() {
        let mut req = tool_request();
        place_credentials(&mut req, "lms-token", "lms.example").unwrap();
        let names: Vec<&str> = req.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(req.headers.get_all("authorization").iter().count(), 1);
        assert_eq!(req.headers["authorization"], "Bearer lms-token");
        assert_eq!(req.headers["host"], "lms.example");
        for gone in [
            "x-lms-user",
            "cookie",
            "proxy-authorization",
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-host",
            "x-real-ip",
        ] {
            assert!(!names.contains(&gone), "{gone} reached the LMS");
        }
        assert_eq!(req.headers["accept"], "application/json");
    }

    #[test]
    fn a_token_that_is_no_header_value_fails_and_leaves_no_credential() {
        let mut req = tool_request();
        let e = place_credentials(&mut req, "EVIL\nX", "lms.example").unwrap_err();
        assert!(matches!(e, ForwardError::TokenNotAHeader));
        assert!(req.headers.get("authorization").is_none());
    }

    #[test]
    fn access_token_is_stripped_in_every_spelling() {
        for query in [
            "ACCESS_TOKEN=t",
            "Access_Token=t",
            "access_token[]=t",
            "access_token%5B%5D=t",
            "access%5Ftoken=t",
            "%61ccess_token=t",
            "+access_token=t",
        ] {
            assert_eq!(upstream_path("", "/x", Some(query)), "/x", "{query}");
        }
        assert_eq!(
            upstream_path("", "/x", Some("a=1;access_token=t;b=2&ACCESS_TOKEN=u&c=3")),
            "/x?a=1;b=2&c=3"
        );
        assert_eq!(
            upstream_path("", "/x", Some("access_token=t;a=1")),
            "/x?a=1"
        );
    }
}
