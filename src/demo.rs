//! `lms-proxy demo`: the sandbox LMS and the proxy in one process, on the embedded store in a
//! scratch folder, with a connected user and the curl lines to try. Nothing to configure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use crate::config::Config;
use crate::crypto::{random_token, Crypto};
use crate::store;
use crate::tokens::{now_unix, TokenRecord, Tokens};
use crate::types::{AccessToken, PlatformId, TokenKey, ToolId, UserKey};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder for the demo's config and SQLite file (default: a new temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

const TOOL_SECRET_VAR: &str = "DEMO_TOOL_SECRET";
const CONNECTED_USER: &str = "ada";
const NEW_USER: &str = "grace";

pub fn run(args: DemoArgs) -> Result<(), String> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("lms-proxy-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("error: {}: {e}", dir.display()))?;

    let (sandbox_origin, sandbox) = start_sandbox()?;
    let public_url = format!("http://{}", args.listen);
    let config_text = demo_config(&args.listen, &public_url, &sandbox_origin);
    let config_path = dir.join("lms-proxy.toml");
    std::fs::write(&config_path, &config_text)
        .map_err(|e| format!("error: {}: {e}", config_path.display()))?;

    let mut key = [0u8; 32];
    key.copy_from_slice(&crate::crypto::sha256(random_token().as_bytes()));
    let env: HashMap<&str, String> = HashMap::from([
        ("LMS_PROXY_KEY", STANDARD.encode(key)),
        ("CANVAS_CLIENT_SECRET", random_token()),
        (TOOL_SECRET_VAR, random_token()),
    ]);
    let lookup = |name: &str| env.get(name).cloned();
    let config = Config::parse(&config_text, &dir, &lookup)
        .map_err(|e| format!("error: demo config: {e}"))?;

    // Ada has connected already; Grace has not.
    let access = sandbox.issue(42, 3600, None);
    super::cli::block_on(async {
        let store = store::open(&config.store)
            .await
            .map_err(|e| e.to_string())?;
        let tokens = Tokens::new(
            store,
            Arc::new(Crypto::new(&config.server.master_key)),
            &config.tokens,
        );
        let key = TokenKey::new(
            PlatformId::new("canvas"),
            ToolId::new("demo"),
            UserKey::new(CONNECTED_USER),
        );
        let record = TokenRecord {
            access_token: AccessToken::new(access),
            refresh_token: None,
            expires_at: Some(now_unix() + 3600),
            lms_user_id: Some("42".into()),
        };
        tokens.save(key, record).await.map_err(|e| e.to_string())
    })?
    .map_err(|e| format!("error: demo store: {e}"))?;

    let secret = env.get(TOOL_SECRET_VAR).cloned().unwrap_or_default();
    let jwt = |user: &str| {
        let now = now_unix();
        encode(
            &Header::default(),
            &json!({"iss": "demo", "sub": user, "aud": public_url, "iat": now, "exp": now + 86_000}),
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap_or_default()
    };
    print_steps(
        &public_url,
        &sandbox_origin,
        &dir,
        &jwt(CONNECTED_USER),
        &jwt(NEW_USER),
    );
    crate::server::run(config).map_err(|e| format!("error: {e}"))
}

fn start_sandbox() -> Result<(String, Arc<crate::sandbox::Sandbox>), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        rt.block_on(async move {
            let started = async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| e.to_string())?;
                crate::sandbox::start(listener, None, None)
            }
            .await;
            let _ = tx.send(started.map(|r| (r.origin, r.state)));
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("error: sandbox: {e}"))
}

fn demo_config(listen: &SocketAddr, public_url: &str, sandbox: &str) -> String {
    format!(
        r#"# Written by `lms-proxy demo`; secrets come from the demo process itself.
[server]
listen = "{listen}"
public_url = "{public_url}"
key_env = "LMS_PROXY_KEY"
threads = 1

[store]
url = "sqlite://lms-proxy.db"

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "{sandbox}"
client_id = "10000000000001"
client_secret_env = "CANVAS_CLIENT_SECRET"

[[routes]]
prefix = "/canvas"
platform = "canvas"

[[tools]]
id = "demo"
secret_env = "{TOOL_SECRET_VAR}"
platforms = ["canvas"]
"#
    )
}

fn print_steps(public_url: &str, sandbox: &str, dir: &std::path::Path, ada: &str, grace: &str) {
    println!(
        r#"
lms-proxy demo
  sandbox LMS (Canvas emulator): {sandbox}
  proxy:                         {public_url}   (route /canvas -> the sandbox)
  config and SQLite store:       {dir}

1. Ada has connected already. Call Canvas through the proxy with the tool's JWT for her:

   ADA='{ada}'
   curl -s -H "Authorization: Bearer $ADA" {public_url}/canvas/api/v1/users/self

2. Pagination stays on the proxy: every Link URL points back at {public_url}/canvas.

   curl -s -D - -o /dev/null -H "Authorization: Bearer $ADA" '{public_url}/canvas/api/v1/courses?per_page=5'

3. Grace has not connected. The proxy answers 401 authorization_required with the
   consent URL the tool shows her:

   GRACE='{grace}'
   curl -s -H "Authorization: Bearer $GRACE" {public_url}/canvas/api/v1/users/self

Stop with Ctrl-C.
"#,
        dir = dir.display()
    );
}
