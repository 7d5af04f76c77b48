//! Writing the proxy's own answers to the tool, and editing the LMS's response headers.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

use crate::body_rewrite::HeldBody;
use crate::http::Answer;
use crate::provider::Provider;
use crate::rewrite::Rewriter;

pub async fn send(session: &mut Session, answer: Answer) -> Result<()> {
    let mut header = ResponseHeader::build(answer.status, Some(answer.headers.len() + 1))?;
    for (name, value) in answer.headers {
        header.insert_header(name, value)?;
    }
    header.insert_header("content-length", answer.body.len().to_string())?;
    let empty = answer.body.is_empty();
    session
        .write_response_header(Box::new(header), empty)
        .await?;
    if !empty {
        session.write_response_body(Some(answer.body), true).await?;
    }
    Ok(())
}

/// LMS URLs in `Link` and `Location` point back at the proxy; LMS cookies stay with the LMS
/// (they would otherwise land on the proxy's origin, next to its own state cookie).
pub fn rewrite_headers(response: &mut ResponseHeader, rewriter: &Rewriter<'_>) {
    let mut changed = false;
    let links: Vec<http::HeaderValue> = response
        .headers
        .get_all(http::header::LINK)
        .iter()
        .map(|value| {
            let rewritten = value
                .to_str()
                .ok()
                .and_then(|text| rewriter.link(text))
                .and_then(|new| http::HeaderValue::from_str(&new).ok());
            changed |= rewritten.is_some();
            rewritten.unwrap_or_else(|| value.clone())
        })
        .collect();
    if changed {
        response.remove_header(&http::header::LINK);
        for link in links {
            if let Err(e) = response.append_header(http::header::LINK, link) {
                // A link that cannot be written is dropped: never left pointing at the LMS.
                tracing::warn!(error = %e, "dropped a Link header that could not be written");
            }
        }
    }
    let location = response
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| rewriter.location(v));
    if let Some(location) = location {
        if response
            .insert_header(http::header::LOCATION, location)
            .is_err()
        {
            // Not left pointing at the LMS, where the tool would follow it without a token.
            response.remove_header(&http::header::LOCATION);
        }
    }
    response.remove_header(&http::header::SET_COOKIE);
}

/// Whether this answer's body is held back to rewrite the kind's next-page link: JSON, not
/// compressed. The length changes, so the answer goes out chunked. A compressed answer (the
/// proxy asked for none) passes unchanged, with a warning.
pub fn hold_body(response: &mut ResponseHeader, provider: &dyn Provider) -> Option<HeldBody> {
    let field = provider.body_link_field()?;
    if response.status != http::StatusCode::OK {
        return None;
    }
    let header = |name: http::header::HeaderName| {
        response
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    if !header(http::header::CONTENT_TYPE).is_some_and(|t| t.contains("json")) {
        return None;
    }
    if let Some(encoding) = header(http::header::CONTENT_ENCODING) {
        if encoding != "identity" {
            tracing::warn!(%encoding, "a compressed JSON answer: its {field} link is not rewritten");
            return None;
        }
    }
    response.remove_header(&http::header::CONTENT_LENGTH);
    if response
        .insert_header(http::header::TRANSFER_ENCODING, "chunked")
        .is_err()
    {
        return None;
    }
    Some(HeldBody::new(field))
}
