//! Rewrites an LMS URL inside a JSON answer back to the proxy: Brightspace's ObjectListPage
//! answers carry the next page as `"Next": "https://<lms>/d2l/api/..."`, and a client that
//! follows it as given would leave the proxy (and the user's token) behind.
//!
//! Only the one named field of the top-level object is touched, and only when it is a URL
//! on the LMS under `base_url`; every other byte is kept as the LMS sent it. Anything that is
//! not a well-formed JSON object passes through unchanged. The scan reads the body once and
//! allocates only when it rewrites.

use bytes::{Bytes, BytesMut};

use crate::rewrite::Rewriter;

/// The largest answer held back for rewriting. A bigger one is passed on unchanged: a page of
/// a paged API is far smaller, and holding more would let one answer take the proxy's memory.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// Deeper nesting than this is not a page of an LMS API; the answer passes unchanged rather
/// than risk the scan's stack.
const MAX_DEPTH: usize = 64;

/// The body with `field` rewritten, or `None` when there is nothing to rewrite.
pub fn rewrite_field(body: &[u8], field: &str, rewriter: &Rewriter<'_>) -> Option<Vec<u8>> {
    let (start, end) = Scan::new(body).top_level_string(field.as_bytes())?;
    let url: String = serde_json::from_slice(&body[start..end]).ok()?;
    let rewritten = rewriter.absolute(&url)?;
    let encoded = serde_json::to_string(&rewritten).ok()?;
    let mut out = Vec::with_capacity(body.len() + encoded.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(&body[end..]);
    Some(out)
}

/// An answer held back until it is whole, then rewritten once.
pub struct HeldBody {
    field: &'static str,
    buffer: BytesMut,
    /// Past `MAX_BODY`: everything from here on is passed on as it comes.
    passing: bool,
}

impl HeldBody {
    pub fn new(field: &'static str) -> Self {
        Self {
            field,
            buffer: BytesMut::new(),
            passing: false,
        }
    }

    /// Takes one chunk of the answer; returns what to send on now.
    pub fn take(
        &mut self,
        chunk: Option<Bytes>,
        end_of_stream: bool,
        rewriter: &Rewriter<'_>,
    ) -> Option<Bytes> {
        if self.passing {
            return chunk;
        }
        if let Some(chunk) = chunk {
            self.buffer.extend_from_slice(&chunk);
        }
        if self.buffer.len() > MAX_BODY {
            tracing::warn!(
                limit = MAX_BODY,
                "an answer too large to rewrite its {} link; passed on unchanged",
                self.field
            );
            self.passing = true;
            return Some(std::mem::take(&mut self.buffer).freeze());
        }
        if !end_of_stream {
            return None;
        }
        let whole = std::mem::take(&mut self.buffer).freeze();
        match rewrite_field(&whole, self.field, rewriter) {
            Some(rewritten) => Some(Bytes::from(rewritten)),
            None => Some(whole),
        }
    }
}

struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// The span (quotes included) of the top-level object's string member `key`, when the
    /// whole body is one well-formed object.
    fn top_level_string(mut self, key: &[u8]) -> Option<(usize, usize)> {
        self.skip_space();
        if self.bytes.get(self.at) == Some(&0xEF) {
            // A UTF-8 byte order mark, as some .NET servers send.
            self.at += 3;
            self.skip_space();
        }
        self.expect(b'{')?;
        let mut found = None;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return self.end().and(found);
        }
        loop {
            self.skip_space();
            let (ks, ke) = self.string()?;
            self.skip_space();
            self.expect(b':')?;
            self.skip_space();
            if &self.bytes[ks + 1..ke - 1] == key && self.peek()? == b'"' {
                found = Some(self.string()?);
            } else {
                self.value(1)?;
            }
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        self.end().and(found)
    }

    fn end(&mut self) -> Option<()> {
        self.skip_space();
        (self.at == self.bytes.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.at += 1;
        }
    }

    /// A string's span, quotes included.
    fn string(&mut self) -> Option<(usize, usize)> {
        let start = self.at;
        self.expect(b'"')?;
        loop {
            let rest = self.bytes.get(self.at..)?;
            let stop = memchr::memchr2(b'"', b'\\', rest)?;
            self.at += stop;
            match self.next()? {
                b'"' => return Some((start, self.at)),
                _ => {
                    // An escape: the next byte is taken as it is.
                    self.next()?;
                }
            }
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.container(b'}', depth, true),
            b'[' => self.container(b']', depth, false),
            _ => {
                let start = self.at;
                while let Some(b) = self.peek() {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                        break;
                    }
                    self.at += 1;
                }
                (self.at > start).then_some(())
            }
        }
    }

    fn container(&mut self, close: u8, depth: usize, keyed: bool) -> Option<()> {
        self.at += 1;
        self.skip_space();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            self.skip_space();
            if keyed {
                self.string()?;
                self.skip_space();
                self.expect(b':')?;
                self.skip_space();
            }
            self.value(depth + 1)?;
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b if b == close => return Some(()),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Upstream;
    use url::Url;

    fn upstream() -> Upstream {
        Upstream::from_base_url(&Url::parse("https://school.brightspace.com").unwrap()).unwrap()
    }

    fn rewrite(body: &str) -> Option<String> {
        let upstream = upstream();
        let rewriter = Rewriter {
            upstream: &upstream,
            public_base: "https://proxy.example.edu/d2l",
        };
        rewrite_field(body.as_bytes(), "Next", &rewriter).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn rewrites_next_and_keeps_every_other_byte() {
        let body = "{ \"Objects\" : [ {\"Next\":\"https://school.brightspace.com/x\", \"n\": 1.5e3}, [true,null] ],\n  \"Next\": \"https://school.brightspace.com/d2l/api/le/1.67/6606/classlist/paged/?bookmark=20\" }";
        let out = rewrite(body).unwrap();
        assert_eq!(
            out,
            body.replace(
                "\"Next\": \"https://school.brightspace.com/d2l/api/le",
                "\"Next\": \"https://proxy.example.edu/d2l/d2l/api/le"
            )
        );
    }

    #[test]
    fn leaves_what_is_not_ours_alone() {
        // Another host, a lookalike host, null, a relative path, no Next, not an object,
        // a nested Next only, malformed JSON, trailing garbage.
        for body in [
            r#"{"Objects":[],"Next":"https://files.example.com/x"}"#,
            r#"{"Objects":[],"Next":"https://school.brightspace.com.evil.com/x"}"#,
            r#"{"Objects":[],"Next":null}"#,
            r#"{"Objects":[],"Next":"/d2l/api/x"}"#,
            r#"{"Objects":[]}"#,
            r#"[{"Next":"https://school.brightspace.com/x"}]"#,
            r#"{"Page":{"Next":"https://school.brightspace.com/x"}}"#,
            r#"{"Objects":[,"Next":"https://school.brightspace.com/x"}"#,
            r#"{"Next":"https://school.brightspace.com/x"} x"#,
            r#"{"Next":"https://school.brightspace.com/x""#,
        ] {
            assert_eq!(rewrite(body), None, "{body}");
        }
    }

    #[test]
    fn escaped_urls_are_read_as_json_reads_them() {
        let out = rewrite(r#"{"Next":"https:\/\/school.brightspace.com\/d2l\/api?a=\u0031"}"#);
        assert_eq!(
            out.as_deref(),
            Some(r#"{"Next":"https://proxy.example.edu/d2l/d2l/api?a=1"}"#)
        );
    }

    #[test]
    fn deep_nesting_passes_unchanged() {
        let deep = format!(
            "{{\"a\":{}1{},\"Next\":\"https://school.brightspace.com/x\"}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(rewrite(&deep), None);
    }

    #[test]
    fn a_held_body_is_released_whole_and_rewritten() {
        let upstream = upstream();
        let rewriter = Rewriter {
            upstream: &upstream,
            public_base: "https://p/d2l",
        };
        let mut held = HeldBody::new("Next");
        assert_eq!(
            held.take(
                Some(Bytes::from_static(b"{\"Next\":\"https://school")),
                false,
                &rewriter
            ),
            None
        );
        let out = held.take(
            Some(Bytes::from_static(b".brightspace.com/a\"}")),
            true,
            &rewriter,
        );
        assert_eq!(
            out.unwrap(),
            Bytes::from_static(b"{\"Next\":\"https://p/d2l/a\"}")
        );
    }
}
