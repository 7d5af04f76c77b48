//! Percent-decoding paths the way an LMS (or a server in front of it) will, so that checks
//! on a path judge what the LMS will act on, not how the tool spelled it.

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

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("/a%2Fb/%2e%2E/%zz/%4"), "/a/b/../%zz/%4");
    }
}
