//! Answers the proxy writes itself: JSON, redirects and small HTML pages, built as plain data
//! so they can be tested without a server and sent by whichever front end owns the socket.

use bytes::Bytes;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Answer {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "application/json; charset=utf-8".into()),
                ("cache-control", "no-store".into()),
            ],
            body: Bytes::from(body.to_string()),
        }
    }

    pub fn redirect(location: &str) -> Self {
        Self {
            status: 302,
            headers: vec![
                ("location", location.to_string()),
                ("cache-control", "no-store".into()),
            ],
            body: Bytes::new(),
        }
    }

    pub fn text(status: u16, body: &'static str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".into())],
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    /// A small self-contained page for people in a browser; `message` is escaped.
    pub fn html(status: u16, title: &str, message: &str) -> Self {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
             <body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
             <h1>{t}</h1><p>{m}</p></body></html>",
            t = escape_html(title),
            m = escape_html(message)
        );
        Self {
            status,
            headers: vec![
                ("content-type", "text/html; charset=utf-8".into()),
                ("cache-control", "no-store".into()),
                (
                    "content-security-policy",
                    "default-src 'none'; style-src 'unsafe-inline'".into(),
                ),
            ],
            body: Bytes::from(body),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        let a = Answer::html(400, "Bad <state>", "x\"><script>");
        let body = std::str::from_utf8(&a.body).unwrap();
        assert!(body.contains("Bad &lt;state&gt;"));
        assert!(!body.contains("<script>"));
    }
}
