//! `lms-proxy mint`: a tool JWT on stdout, for trying the proxy out and for tests.

use std::path::PathBuf;

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::expiry::now_unix;
use crate::identity::user_key;
use crate::types::ToolId;

#[derive(clap::Args)]
pub struct MintArgs {
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: PathBuf,
    /// The tool id (`[[tools]] id`).
    #[arg(long)]
    tool: String,
    /// The user key (`sub`).
    #[arg(long)]
    user: String,
    /// The user's id in the LMS, checked at consent.
    #[arg(long)]
    lms_user_id: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

pub fn run(args: MintArgs) -> Result<(), String> {
    let config = super::load(&args.config)?;
    let tool = config
        .tool(&ToolId::new(args.tool.as_str()))
        .ok_or_else(|| {
            format!(
                "error: --tool: no tool with id {:?} in {}",
                args.tool,
                args.config.display()
            )
        })?;
    let secret = tool
        .jwt_key
        .as_ref()
        .and_then(|k| k.secret.as_ref())
        .ok_or_else(|| {
            format!(
                "error: --tool: tool {:?} has no secret_env; mint signs HS256 JWTs only (sign with the tool's own private key instead)",
                args.tool
            )
        })?;
    if user_key(args.user.as_bytes()).is_none() {
        return Err("error: --user: must be 1 to 255 visible ASCII characters".into());
    }
    let max = config.server.max_tool_token_ttl.as_secs();
    if args.ttl == 0 || args.ttl > max {
        return Err(format!(
            "error: --ttl: must be between 1 and {max} (server.max_tool_token_ttl_secs)"
        ));
    }
    let now = now_unix();
    let mut claims = json!({
        "iss": tool.id.as_str(),
        "sub": args.user,
        "aud": config.server.public_url,
        "iat": now,
        "exp": now + args.ttl as i64,
    });
    if let Some(id) = args.lms_user_id {
        claims["lms_user_id"] = id
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::from(id));
    }
    let jwt = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.expose().as_bytes()),
    )
    .map_err(|e| format!("error: cannot sign: {e}"))?;
    println!("{jwt}");
    Ok(())
}
