//! `lms-proxy tokens import|list|delete`: operators moving users in from a tool that already
//! holds their tokens, and looking after what is stored.
//!
//! Import reads every line first and writes nothing unless all of them are good, then writes
//! them in one transaction: a file is imported whole or not at all.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::Config;
use crate::crypto::Crypto;
use crate::expiry;
use crate::expiry::now_unix;
use crate::identity::user_key;
use crate::store::{self, ListFilter};
use crate::tokens::{TokenRecord, Tokens};
use crate::types::{
    is_lms_user_id_shape, is_token_shape, AccessToken, PlatformId, RefreshToken, TokenKey, ToolId,
    UserKey,
};

#[derive(clap::Subcommand)]
pub enum TokensCommand {
    /// Import tokens from JSON lines on stdin:
    /// {"user","access_token","refresh_token","expires_at"|"expires_in","lms_user_id"}.
    Import {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        platform: String,
        #[arg(long)]
        tool: String,
    },
    /// List stored grants (never the tokens themselves).
    List {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        platform: Option<String>,
        #[arg(long)]
        tool: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete one user's grant locally (it is not revoked at the LMS).
    Delete {
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        platform: String,
        #[arg(long)]
        tool: String,
        #[arg(long)]
        user: String,
    },
}

pub fn run(cmd: TokensCommand) -> Result<(), String> {
    match cmd {
        TokensCommand::Import {
            config,
            platform,
            tool,
        } => {
            let config = super::load(&config)?;
            let (platform, tool) = platform_and_tool(&config, &platform, &tool)?;
            let stdin = std::io::stdin();
            let records = parse_import(stdin.lock(), now_unix()).map_err(|problems| {
                format!(
                    "error: nothing imported; fix these lines:\n  {}",
                    problems.join("\n  ")
                )
            })?;
            let count = records.len();
            super::block_on(async {
                let tokens = tokens(&config).await?;
                let grants = records
                    .into_iter()
                    .map(|(user, record)| {
                        (TokenKey::new(platform.clone(), tool.clone(), user), record)
                    })
                    .collect();
                tokens
                    .import(grants)
                    .await
                    .map_err(|e| format!("error: nothing imported: {e}"))
            })??;
            println!("imported {count} token(s) for platform {platform}, tool {tool}");
            Ok(())
        }
        TokensCommand::List {
            config,
            platform,
            tool,
            json,
        } => {
            let config = super::load(&config)?;
            let filter = ListFilter {
                platform: platform.map(PlatformId::new),
                tool: tool.map(ToolId::new),
            };
            let rows = super::block_on(async {
                let store = store::open(&config.store)
                    .await
                    .map_err(|e| format!("error: {e}"))?;
                store
                    .grants
                    .list(&filter)
                    .await
                    .map_err(|e| format!("error: {e}"))
            })??;
            if !json {
                println!(
                    "{:<16} {:<16} {:<32} {:<12} EXPIRES_AT",
                    "PLATFORM", "TOOL", "USER", "LMS_USER_ID"
                );
            }
            for row in rows {
                let expires = row.expires_at.map(rfc3339);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "platform": row.key.platform.as_str(),
                            "tool": row.key.tool.as_str(),
                            "user": row.key.user.as_str(),
                            "lms_user_id": row.lms_user_id,
                            "expires_at": expires,
                            "updated_at": rfc3339(row.updated_at),
                        })
                    );
                } else {
                    println!(
                        "{:<16} {:<16} {:<32} {:<12} {}",
                        row.key.platform,
                        row.key.tool,
                        row.key.user,
                        row.lms_user_id.as_deref().unwrap_or("-"),
                        expires.as_deref().unwrap_or("-")
                    );
                }
            }
            Ok(())
        }
        TokensCommand::Delete {
            config,
            platform,
            tool,
            user,
        } => {
            let config = super::load(&config)?;
            let (platform, tool) = platform_and_tool(&config, &platform, &tool)?;
            let user = user_key(user.as_bytes()).ok_or("error: --user: not a valid user key")?;
            let key = TokenKey::new(platform, tool, user);
            let existed = super::block_on(async {
                tokens(&config)
                    .await?
                    .delete(&key)
                    .await
                    .map_err(|e| format!("error: {e}"))
            })??;
            if existed {
                println!(
                    "deleted the token of user {} for tool {} on {}",
                    key.user, key.tool, key.platform
                );
                Ok(())
            } else {
                Err(format!(
                    "error: no token stored for user {} of tool {} on {}",
                    key.user, key.tool, key.platform
                ))
            }
        }
    }
}

fn platform_and_tool(
    config: &Config,
    platform: &str,
    tool: &str,
) -> Result<(PlatformId, ToolId), String> {
    let platform = PlatformId::new(platform);
    let tool_id = ToolId::new(tool);
    if config.platform(&platform).is_none() {
        return Err(format!(
            "error: --platform: no platform with id {platform:?} in the config"
        ));
    }
    let tool = config
        .tool(&tool_id)
        .ok_or_else(|| format!("error: --tool: no tool with id {tool_id:?} in the config"))?;
    if !tool.may_use(&platform) {
        return Err(format!(
            "error: tool {tool_id} may not use platform {platform} (add it to tools.platforms)"
        ));
    }
    Ok((platform, tool_id))
}

async fn tokens(config: &Config) -> Result<Tokens, String> {
    let store = store::open(&config.store)
        .await
        .map_err(|e| format!("error: {e}"))?;
    let crypto = Arc::new(Crypto::new(&config.server.master_key));
    Ok(Tokens::new(store.grants, crypto, &config.tokens))
}

/// Always RFC 3339: a row written before expiries were bounded is shown at the nearest
/// year RFC 3339 can spell (0000 or 9999), never as a raw number.
fn rfc3339(unix: i64) -> String {
    const YEAR_0: i64 = -62_167_219_200;
    const END_OF_9999: i64 = 253_402_300_799;
    OffsetDateTime::from_unix_timestamp(unix.clamp(YEAR_0, END_OF_9999))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    user: String,
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<TimeValue>,
    expires_in: Option<i64>,
    lms_user_id: Option<IdValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TimeValue {
    Unix(i64),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Number(i64),
    Text(String),
}

/// Every line checked; all problems returned at once, by line number.
fn parse_import(input: impl BufRead, now: i64) -> Result<Vec<(UserKey, TokenRecord)>, Vec<String>> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                problems.push(format!("line {n}: cannot read: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, now) {
            Ok((user, record)) => {
                if !seen.insert(user.clone()) {
                    problems.push(format!("line {n}: user {user} appears more than once"));
                }
                records.push((user, record));
            }
            Err(e) => problems.push(format!("line {n}: {e}")),
        }
    }
    if records.is_empty() && problems.is_empty() {
        problems.push("no token lines on stdin".into());
    }
    if problems.is_empty() {
        Ok(records)
    } else {
        Err(problems)
    }
}

fn parse_line(line: &str, now: i64) -> Result<(UserKey, TokenRecord), String> {
    // serde's message could quote a token from the line; only its category is shown.
    let parsed: ImportLine = serde_json::from_str(line).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            let text = e.to_string();
            match text.find(" at line") {
                Some(end) if text.starts_with("unknown field") || text.starts_with("missing field") => {
                    text[..end].to_string()
                }
                _ => "a field has the wrong type (user, access_token and refresh_token are strings; expires_at is RFC 3339 or unix seconds; expires_in is seconds)".to_string(),
            }
        }
        _ => "not a JSON object".to_string(),
    })?;
    let user =
        user_key(parsed.user.as_bytes()).ok_or("user must be 1 to 255 visible ASCII characters")?;
    if !is_token_shape(&parsed.access_token) {
        return Err(
            "access_token must be 1-4096 characters of A-Z a-z 0-9 - . _ ~ + / (then = padding)"
                .into(),
        );
    }
    if parsed
        .refresh_token
        .as_deref()
        .is_some_and(|r| !is_token_shape(r))
    {
        return Err(
            "refresh_token must be 1-4096 characters of A-Z a-z 0-9 - . _ ~ + / (then = padding); leave it out when there is none"
                .into(),
        );
    }
    let expires_at = match (parsed.expires_at, parsed.expires_in) {
        (Some(_), Some(_)) => return Err("give expires_at or expires_in, not both".into()),
        (Some(TimeValue::Unix(t)), None) => Some(t),
        (Some(TimeValue::Text(s)), None) => Some(
            OffsetDateTime::parse(&s, &Rfc3339)
                .map_err(|_| "expires_at is not RFC 3339 (2026-01-31T12:00:00Z)".to_string())?
                .unix_timestamp(),
        ),
        (None, Some(secs)) if (1..=expiry::MAX_LIFETIME_SECS).contains(&secs) => {
            Some(expiry::from_lifetime(now, secs))
        }
        (None, Some(_)) => {
            return Err("expires_in must be between 1 second and 10 years".into());
        }
        (None, None) => None,
    };
    if expires_at.is_some_and(|t| !expiry::is_within_window(now, t)) {
        return Err("expires_at must lie within ten years of now".into());
    }
    let lms_user_id = parsed.lms_user_id.map(|id| match id {
        IdValue::Number(n) => n.to_string(),
        IdValue::Text(s) => s,
    });
    if lms_user_id
        .as_deref()
        .is_some_and(|id| !is_lms_user_id_shape(id))
    {
        return Err("lms_user_id must be 1 to 255 visible ASCII characters".into());
    }
    Ok((
        user,
        TokenRecord {
            access_token: AccessToken::new(parsed.access_token),
            refresh_token: parsed.refresh_token.map(RefreshToken::new),
            expires_at,
            lms_user_id,
            obtained_at: now,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_lines() {
        let input = r#"{"user":"u1","access_token":"a1","refresh_token":"r1","expires_in":3600,"lms_user_id":42}

{"user":"u2","access_token":"a2","expires_at":"2030-01-01T00:00:00Z","lms_user_id":"x"}
{"user":"u3","access_token":"a3","expires_at":1900000000}"#;
        let now = 1_800_000_000;
        let records = parse_import(input.as_bytes(), now).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].1.expires_at, Some(now + 3600));
        assert_eq!(records[0].1.lms_user_id.as_deref(), Some("42"));
        assert_eq!(records[1].1.expires_at, Some(1_893_456_000));
        assert_eq!(records[2].1.refresh_token, None);
    }

    #[test]
    fn reports_every_bad_line_by_number_without_echoing_tokens() {
        let input = r#"{"user":"u1","access_token":"a1"}
not json
{"user":"u1","access_token":"a2"}
{"user":"u3"}
{"user":"u4","access_token":"a4","expires_in":10,"expires_at":5}
{"user":"u5","access_token":"a5","surprise":1}
{"user":"u6","access_token":12345}
{"user":"u 7","access_token":"a7"}"#;
        let problems = parse_import(input.as_bytes(), 0).unwrap_err();
        let text = problems.join("\n");
        for n in [2, 3, 4, 5, 6, 7, 8] {
            assert!(
                text.contains(&format!("line {n}:")),
                "line {n} missing from:\n{text}"
            );
        }
        assert!(!text.contains("line 1:"));
        assert!(!text.contains("12345"));
        assert!(text.contains("missing field `access_token`"));
        assert!(text.contains("unknown field `surprise`"));
    }

    #[test]
    fn refuses_malformed_tokens_and_absurd_expiries_without_echoing_them() {
        let now = 1_800_000_000;
        let input = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            r#"{"user":"u1","access_token":"EVIL\nX-Leak: 1"}"#,
            r#"{"user":"u2","access_token":"ok","refresh_token":"bad token"}"#,
            r#"{"user":"u3","access_token":"ok","expires_in":9223372036854775807}"#,
            r#"{"user":"u4","access_token":"ok","expires_at":-9223372036854775808}"#,
            r#"{"user":"u5","access_token":"ok","expires_at":9223372036854775807}"#,
            r#"{"user":"u6","access_token":"ok","expires_at":"10000-01-01T00:00:00Z"}"#,
            r#"{"user":"u7","access_token":"ok","expires_at":"0001-01-01T00:00:00Z"}"#,
            r#"{"user":"u8","access_token":"ok","lms_user_id":"a\u0007b"}"#,
            r#"{"user":"u9","access_token":"ok","expires_at":"garbage-secret"}"#,
        );
        let problems = parse_import(input.as_bytes(), now).unwrap_err();
        let text = problems.join("\n");
        for n in 1..=9 {
            assert!(
                text.contains(&format!("line {n}:")),
                "line {n} missing:\n{text}"
            );
        }
        for secret in ["EVIL", "X-Leak", "bad token", "garbage-secret", "10000-01"] {
            assert!(!text.contains(secret), "{secret} echoed:\n{text}");
        }
    }

    #[test]
    fn expiries_at_the_edge_of_the_window_are_kept() {
        let now = 1_800_000_000;
        let input = format!(
            r#"{{"user":"u1","access_token":"a","expires_in":{}}}"#,
            expiry::MAX_LIFETIME_SECS
        );
        let records = parse_import(input.as_bytes(), now).unwrap();
        assert_eq!(
            records[0].1.expires_at,
            Some(now + expiry::MAX_LIFETIME_SECS)
        );
    }

    #[test]
    fn expiries_print_as_rfc3339_whatever_is_stored() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MIN), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(parse_import("".as_bytes(), 0).is_err());
    }
}
