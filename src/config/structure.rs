//! Reading the file's structure into [`FileConfig`], with every structural problem said the
//! way an operator fixes it: the key path (`server.listn`), a "did you mean" for a near miss,
//! and plain words for types ("a whole number", not `usize`).
//!
//! serde stops at the first problem, so a file with three typos would take three rounds of
//! `check`. Instead each problem's key is taken out of the parsed tree and the rest is read
//! again, until it reads or a bound is hit: one `check` lists them all.

use serde_path_to_error::{Path, Segment};

use super::file::FileConfig;
use super::Problem;

/// More problems than this in one file are not worth listing one by one.
const MAX_PROBLEMS: usize = 25;

/// The file's sections, or every structural problem in it.
pub fn read(text: &str) -> Result<FileConfig, Vec<Problem>> {
    let mut tree: toml::Table = toml::from_str(text).map_err(|e| vec![syntax(text, &e)])?;
    let mut problems: Vec<Problem> = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, FileConfig>(toml::Value::Table(tree.clone())) {
            Ok(file) if problems.is_empty() => return Ok(file),
            Ok(_) => return Err(problems),
            Err(e) => {
                let path = e.path().clone();
                let message = e.inner().message().to_string();
                let mut problem = describe(&path, &message);
                if let Some(line) = line_of(text, &problem.path) {
                    problem.message.push_str(&format!(" (line {line})"));
                }
                // A key taken out for its type then shows up as missing: said once.
                let repeat = problems.iter().any(|p| p.path == problem.path);
                if !repeat {
                    problems.push(problem);
                }
                if repeat || problems.len() >= MAX_PROBLEMS || !remove(&mut tree, &path, &message) {
                    return Err(problems);
                }
            }
        }
    }
}

fn syntax(text: &str, e: &toml::de::Error) -> Problem {
    let at = e
        .span()
        .map(|span| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default();
    Problem {
        path: String::new(),
        message: format!("not valid TOML: {}{at}", e.message().trim_end()),
    }
}

/// The problem at `path`, in the operator's words.
fn describe(path: &Path, message: &str) -> Problem {
    let mut key = key_path(path);
    let text = if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = known_fields(expected);
        if key.is_empty() || !key.ends_with(field) {
            key = join(&key, field);
        }
        match closest(field, &known) {
            Some(near) => format!("unknown key; did you mean `{near}`?"),
            None if known.is_empty() => "unknown key".to_string(),
            None => format!("unknown key; this table takes {}", list(&known)),
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        key = join(&key, field);
        "is required".to_string()
    } else {
        plain_types(message)
    };
    Problem {
        path: key,
        message: text,
    }
}

/// The line where the key a path ends in is written, when it is written exactly once.
fn line_of(text: &str, path: &str) -> Option<usize> {
    let key = path.rsplit('.').next()?.split('[').next()?;
    if key.is_empty() {
        return None;
    }
    let mut found = text.lines().enumerate().filter(|(_, line)| {
        line.trim_start()
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    });
    let (index, _) = found.next()?;
    found.next().is_none().then_some(index + 1)
}

/// `platforms[0].base_url`, as the rest of `check` names keys.
fn key_path(path: &Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => {}
        }
    }
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// serde's "expected one of `a`, `b`" as a list of names.
fn known_fields(expected: &str) -> Vec<String> {
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn list(known: &[String]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The known key nearest to a typo, when it is near enough to be what was meant: a few
/// letters off, or one word of it (`listen_port` for `listen`).
fn closest(typo: &str, known: &[String]) -> Option<String> {
    let word_of = |a: &str, b: &str| b.len() >= 4 && (a.starts_with(b) || b.starts_with(a));
    known
        .iter()
        .map(|k| {
            let d = edit_distance(typo, k);
            (if word_of(typo, k) { d.min(2) } else { d }, k)
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// serde names Rust types; an operator wants TOML words.
fn plain_types(message: &str) -> String {
    const WORDS: [(&str, &str); 14] = [
        ("usize", "a whole number"),
        ("u64", "a whole number"),
        ("u32", "a whole number"),
        ("u16", "a whole number"),
        ("u8", "a whole number"),
        ("i64", "a whole number"),
        ("a sequence", "a list"),
        ("sequence", "a list"),
        ("a map", "a table"),
        ("map", "a table"),
        ("a boolean", "true or false"),
        ("a string", "a quoted string"),
        ("struct ", "a table "),
        ("integer", "whole number"),
    ];
    let Some((head, expected)) = message.split_once(", expected ") else {
        return message.to_string();
    };
    let expected = expected.trim();
    let word = WORDS
        .iter()
        .find(|(rust, _)| expected == *rust || expected.starts_with(rust))
        .map_or(expected, |(_, plain)| plain);
    let head = head.replace("invalid type: ", "");
    format!("{head} given, {word} expected")
}

/// Takes the key a problem is about out of the tree, so the rest can be read. False when
/// there is nothing to take out (the problem is about the file as a whole).
fn remove(tree: &mut toml::Table, path: &Path, message: &str) -> bool {
    let mut segments: Vec<&Segment> = path.iter().collect();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // The path may stop at the table holding the unknown key.
        let field = rest.split('`').next().unwrap_or(rest);
        if !matches!(segments.last(), Some(Segment::Map { key }) if key == field) {
            return remove_in(tree, &segments, Some(field));
        }
    }
    if message.starts_with("missing field `") {
        return false;
    }
    let last = segments.pop();
    match last {
        Some(Segment::Map { key }) => remove_in(tree, &segments, Some(key)),
        Some(Segment::Seq { index }) => remove_index(tree, &segments, *index),
        _ => false,
    }
}

fn remove_in(tree: &mut toml::Table, parents: &[&Segment], key: Option<&str>) -> bool {
    let Some(key) = key else {
        return false;
    };
    if parents.is_empty() {
        return tree.remove(key).is_some();
    }
    match walk(tree, parents) {
        Some(toml::Value::Table(t)) => t.remove(key).is_some(),
        _ => false,
    }
}

fn remove_index(tree: &mut toml::Table, parents: &[&Segment], index: usize) -> bool {
    match walk(tree, parents) {
        Some(toml::Value::Array(items)) if index < items.len() => {
            items.remove(index);
            true
        }
        _ => false,
    }
}

/// The value at `segments` below the root table (the root itself for no segments).
fn walk<'a>(tree: &'a mut toml::Table, segments: &[&Segment]) -> Option<&'a mut toml::Value> {
    let (first, rest) = segments.split_first()?;
    let Segment::Map { key } = first else {
        return None;
    };
    let mut value = tree.get_mut(key.as_str())?;
    for segment in rest {
        value = match (segment, value) {
            (Segment::Map { key }, toml::Value::Table(t)) => t.get_mut(key.as_str())?,
            (Segment::Seq { index }, toml::Value::Array(a)) => a.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:1"
public_url = "http://x"
key_env = "K"

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "http://lms"
client_id = "1"
client_secret_env = "S"
"#;

    fn problems(text: &str) -> Vec<String> {
        match read(text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn every_structural_problem_is_listed_with_its_key_path() {
        let text = GOOD.replace("listen = ", "listn = ").replace(
            "client_id = \"1\"",
            "client_id = \"1\"\nread_timeout_ms = \"soon\"\nscopez = []",
        );
        let found = problems(&text);
        assert!(
            found.contains(
                &"server.listn: unknown key; did you mean `listen`? (line 3)".to_string()
            ),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("platforms[0].read_timeout_ms:")
                    && p.contains("a whole number expected")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("platforms[0].scopez: unknown key; did you mean `scopes`?")),
            "{found:?}"
        );
        assert!(
            !found
                .iter()
                .any(|p| p.contains("u64") || p.contains("usize")),
            "{found:?}"
        );
    }

    #[test]
    fn a_missing_key_and_a_far_miss_are_said_plainly() {
        let found = problems(&GOOD.replace("key_env = \"K\"\n", "zzz = 1\n"));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("server.key_env: is required")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("server.zzz: unknown key; this table takes `listen`")),
            "{found:?}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let found = problems("[server]\nlisten = \n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("not valid TOML"), "{found:?}");
        assert!(found[0].contains("(line 2)"), "{found:?}");
    }

    #[test]
    fn a_good_file_reads() {
        assert!(read(GOOD).is_ok());
    }
}
