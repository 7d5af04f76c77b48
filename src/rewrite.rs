//! Rewrites LMS URLs in response headers back to the proxy.
//!
//! Canvas writes absolute pagination URLs on its own host into `Link`, and clients such as
//! canvasapi follow `rel="next"` exactly as given: without this, the second page would go
//! straight to the LMS, without the user's token. URLs on other origins (pre-signed file
//! downloads) are left alone.

use crate::config::Upstream;

/// Where to rewrite from and to, for one route.
pub struct Rewriter<'a> {
    pub upstream: &'a Upstream,
    /// `public_url + prefix`, no trailing slash.
    pub public_base: &'a str,
}

impl Rewriter<'_> {
    /// Rewrites every `<URL>` in a `Link` header value. `None` when nothing changed, so the
    /// common case allocates nothing.
    pub fn link(&self, value: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied_to = 0;
        let bytes = value.as_bytes();
        let mut i = 0;
        let mut in_quotes = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => {
                    let Some(len) = value[i + 1..].find('>') else {
                        break;
                    };
                    let start = i + 1;
                    let end = start + len;
                    if let Some(new_url) = self.absolute_url(&value[start..end]) {
                        let buf =
                            out.get_or_insert_with(|| String::with_capacity(value.len() + 64));
                        buf.push_str(&value[copied_to..start]);
                        buf.push_str(&new_url);
                        copied_to = end;
                    }
                    i = end;
                }
                _ => {}
            }
            i += 1;
        }
        out.map(|mut buf| {
            buf.push_str(&value[copied_to..]);
            buf
        })
    }

    /// Rewrites a `Location`: an absolute URL on the LMS origin, or an absolute path.
    pub fn location(&self, value: &str) -> Option<String> {
        if value.starts_with('/') && !value.starts_with("//") {
            return self.on_proxy(value);
        }
        self.absolute_url(value)
    }

    /// Rewrites one absolute URL on the LMS origin (a URL found in a body).
    pub fn absolute(&self, url: &str) -> Option<String> {
        self.absolute_url(url)
    }

    fn absolute_url(&self, url: &str) -> Option<String> {
        let origin = &self.upstream.origin;
        let head = url.get(..origin.len())?;
        if !head.eq_ignore_ascii_case(origin) {
            return None;
        }
        let rest = &url[origin.len()..];
        match rest.as_bytes().first() {
            None => self.on_proxy("/"),
            Some(b'/') => self.on_proxy(rest),
            Some(b'?') | Some(b'#') => self.on_proxy(&format!("/{rest}")),
            // `https://canvas.example.edu.evil.com/...` or a different port: not ours.
            _ => None,
        }
    }

    /// The proxy's URL for an LMS path, or `None` when the path is not under `base_url`'s
    /// path (whole segments): the proxy would fetch it under that path, a different
    /// resource, so such a URL is left as the LMS wrote it.
    fn on_proxy(&self, path_and_query: &str) -> Option<String> {
        let base = self.upstream.base_path.as_str();
        let rest = if base.is_empty() {
            path_and_query
        } else {
            let stripped = path_and_query.strip_prefix(base)?;
            if !(stripped.is_empty() || stripped.starts_with(['/', '?', '#'])) {
                return None;
            }
            stripped
        };
        let mut out = String::with_capacity(self.public_base.len() + rest.len() + 1);
        out.push_str(self.public_base);
        if !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    fn upstream(base: &str) -> Upstream {
        Upstream::from_base_url(&Url::parse(base).unwrap()).unwrap()
    }

    const CANVAS_LINK: &str = "<https://canvas.example.edu/api/v1/courses?page=1&per_page=10>; rel=\"current\",<https://canvas.example.edu/api/v1/courses?page=2&per_page=10>; rel=\"next\",<https://canvas.example.edu/api/v1/courses?page=1&per_page=10>; rel=\"prev\",<https://canvas.example.edu/api/v1/courses?page=1&per_page=10>; rel=\"first\",<https://canvas.example.edu/api/v1/courses?page=5&per_page=10>; rel=\"last\"";

    #[test]
    fn rewrites_every_rel_of_a_canvas_link_header() {
        let up = upstream("https://canvas.example.edu");
        let r = Rewriter {
            upstream: &up,
            public_base: "https://proxy.example.edu/canvas",
        };
        let out = r.link(CANVAS_LINK).unwrap();
        assert_eq!(
            out,
            CANVAS_LINK.replace(
                "https://canvas.example.edu/",
                "https://proxy.example.edu/canvas/"
            )
        );
        assert!(!out.contains("canvas.example.edu/"));
    }

    #[test]
    fn leaves_other_origins_and_lookalikes_alone() {
        let up = upstream("https://canvas.example.edu");
        let r = Rewriter {
            upstream: &up,
            public_base: "https://proxy.example.edu/canvas",
        };
        assert_eq!(
            r.link("<https://files.instructure.com/x?sig=1>; rel=\"next\""),
            None
        );
        assert_eq!(
            r.link("<https://canvas.example.edu.evil.com/x>; rel=\"next\""),
            None
        );
        assert_eq!(
            r.link("<https://canvas.example.edu:8443/x>; rel=\"next\""),
            None
        );
        let mixed = "<https://files.example.com/a>; rel=\"current\",<https://canvas.example.edu/b?page=2>; rel=\"next\"";
        assert_eq!(
            r.link(mixed).unwrap(),
            "<https://files.example.com/a>; rel=\"current\",<https://proxy.example.edu/canvas/b?page=2>; rel=\"next\""
        );
    }

    #[test]
    fn links_outside_the_base_path_are_left_alone() {
        let up = upstream("https://lms.example/lms");
        let r = Rewriter {
            upstream: &up,
            public_base: "https://proxy.example.edu/c",
        };
        assert_eq!(r.link("<https://lms.example/lmsx/a>; rel=\"next\""), None);
        assert_eq!(r.link("<https://lms.example/other/a>; rel=\"next\""), None);
        assert_eq!(
            r.link("<https://lms.example/lms/api/v1/a?page=2>; rel=\"next\"")
                .unwrap(),
            "<https://proxy.example.edu/c/api/v1/a?page=2>; rel=\"next\""
        );
        assert_eq!(
            r.link("<https://lms.example/lms?x=1>; rel=\"next\"")
                .unwrap(),
            "<https://proxy.example.edu/c/?x=1>; rel=\"next\""
        );
    }

    #[test]
    fn quoted_angle_brackets_are_not_urls() {
        let up = upstream("https://canvas.example.edu");
        let r = Rewriter {
            upstream: &up,
            public_base: "https://p",
        };
        let v = "<https://canvas.example.edu/a>; title=\"<https://canvas.example.edu/b>\"";
        assert_eq!(
            r.link(v).unwrap(),
            "<https://p/a>; title=\"<https://canvas.example.edu/b>\""
        );
    }

    #[test]
    fn location_rules() {
        let up = upstream("http://127.0.0.1:8081/lms");
        let r = Rewriter {
            upstream: &up,
            public_base: "https://proxy.example.edu/c",
        };
        assert_eq!(
            r.location("http://127.0.0.1:8081/lms/api/v1/x?a=1")
                .unwrap(),
            "https://proxy.example.edu/c/api/v1/x?a=1"
        );
        assert_eq!(
            r.location("/lms/login").unwrap(),
            "https://proxy.example.edu/c/login"
        );
        assert_eq!(
            r.location("http://127.0.0.1:8081/lms").unwrap(),
            "https://proxy.example.edu/c/"
        );
        // Outside base_url's path: the proxy would fetch another resource. Left alone.
        assert_eq!(r.location("/other"), None);
        assert_eq!(r.location("http://127.0.0.1:8081"), None);
        assert_eq!(r.location("http://127.0.0.1:8081/other/a"), None);
        assert_eq!(r.location("http://127.0.0.1:8081/lmsx/a"), None);
        assert_eq!(r.location("relative/path"), None);
        assert_eq!(r.location("//evil.example/x"), None);
        assert_eq!(r.location("https://elsewhere.example/x"), None);
    }
}
