//! What every part of validation shares: the list of problems found so far, with key paths,
//! and the checks that read the file's values (env vars, files, addresses, URLs, ranges).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{EnvLookup, Problem};

/// Ten minutes: longer than any LMS call or token request should ever take.
const MAX_TIMEOUT_MS: u64 = 600_000;

pub(super) struct Checker<'a> {
    pub(super) problems: Vec<Problem>,
    pub(super) base_dir: &'a Path,
    pub(super) env: EnvLookup<'a>,
}

impl Checker<'_> {
    pub(super) fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn env_var(&mut self, path: &str, name: &str) -> Option<String> {
        if name.is_empty() {
            self.problem(path, "must name an environment variable");
            return None;
        }
        match (self.env)(name) {
            Some(value) if !value.is_empty() => Some(value),
            Some(_) => {
                self.problem(path, format!("environment variable {name} is empty"));
                None
            }
            None => {
                self.problem(path, format!("environment variable {name} is not set"));
                None
            }
        }
    }

    /// `value` when it lies in `min..=max`; otherwise a problem naming the range.
    pub(super) fn in_range(&mut self, key: &str, value: u64, min: u64, max: u64) -> Option<u64> {
        if (min..=max).contains(&value) {
            Some(value)
        } else {
            self.problem(key, format!("{value} is out of range: give {min} to {max}"));
            None
        }
    }

    pub(super) fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn existing_file(&mut self, key: &str, path: &str) -> Option<PathBuf> {
        let resolved = self.resolve(path);
        if resolved.is_file() {
            Some(resolved)
        } else {
            self.problem(key, format!("file {} does not exist", resolved.display()));
            None
        }
    }

    pub(super) fn socket_addr(&mut self, key: &str, value: &str) -> Option<SocketAddr> {
        match value.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    key,
                    format!("{value:?} is not an address like \"127.0.0.1:8080\""),
                );
                None
            }
        }
    }

    pub(super) fn http_url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
                if !url.username().is_empty() || url.password().is_some() {
                    self.problem(key, "must not carry credentials");
                    return None;
                }
                if url.fragment().is_some() {
                    self.problem(key, "must not have a #fragment");
                    return None;
                }
                Some(url)
            }
            Ok(_) => {
                self.problem(key, format!("{value:?} must be an http:// or https:// URL"));
                None
            }
            Err(e) => {
                self.problem(key, format!("{value:?} is not a URL: {e}"));
                None
            }
        }
    }
}

/// A timeout in milliseconds, within bounds, or its default.
pub(super) fn timeout(
    c: &mut Checker<'_>,
    key: &str,
    value: Option<u64>,
    default_ms: u64,
) -> Option<Duration> {
    match value {
        Some(ms) => c
            .in_range(key, ms, 1, MAX_TIMEOUT_MS)
            .map(Duration::from_millis),
        None => Some(Duration::from_millis(default_ms)),
    }
}

/// Scopes travel space-separated: one holding a space would be two.
pub(super) fn scope_words(c: &mut Checker<'_>, key: &str, scopes: &[String]) {
    if let Some(i) = scopes
        .iter()
        .position(|s| s.trim().is_empty() || s.contains(' '))
    {
        c.problem(
            format!("{key}.scopes[{i}]"),
            "a scope must be non-empty and without spaces",
        );
    }
}
