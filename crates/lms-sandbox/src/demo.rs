//! `lms-sandbox demo`: the sandbox LMS and the proxy in one process, on the embedded store in a
//! scratch folder, with the curl lines that walk a newcomer through consent. Nothing to
//! configure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use lms_proxy::config::Config;
use lms_proxy::crypto::random_token;
use lms_proxy::expiry::now_unix;
use lms_proxy::logging::AccessLog;

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
/// The tool's id for the demo user, who is Ada Lovelace (42) in the sandbox LMS.
const USER: &str = "ada";

pub fn run(args: DemoArgs, access: AccessLog) -> Result<(), String> {
    // A folder of its own is removed when the demo stops; one the user named is kept.
    let (dir, scratch) = match args.data_dir {
        Some(dir) => (dir, false),
        None => (
            std::env::temp_dir().join(format!("lms-proxy-demo-{}", std::process::id())),
            true,
        ),
    };
    lms_proxy::server::ensure_free(args.listen, "--listen")
        .map_err(|e| format!("error: {e}; e.g. ./dev demo --listen 127.0.0.1:8081"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("error: {}: {e}", dir.display()))?;

    let mut key = [0u8; 32];
    key.copy_from_slice(&lms_proxy::crypto::sha256(random_token().as_bytes()));
    let env: HashMap<&str, String> = HashMap::from([
        ("LMS_PROXY_KEY", STANDARD.encode(key)),
        ("CANVAS_CLIENT_SECRET", random_token()),
        (TOOL_SECRET_VAR, random_token()),
    ]);
    let client_secret = env.get("CANVAS_CLIENT_SECRET").cloned().unwrap_or_default();
    let sandbox_origin = start_sandbox(client_secret)?;
    let public_url = format!("http://{}", args.listen);
    let config_text = demo_config(&args.listen, &public_url, &sandbox_origin);
    let config_path = dir.join("lms-proxy.toml");
    std::fs::write(&config_path, &config_text)
        .map_err(|e| format!("error: {}: {e}", config_path.display()))?;
    let lookup = |name: &str| env.get(name).cloned();
    let config = Config::parse(&config_text, &dir, &lookup)
        .map_err(|e| format!("error: demo config: {e}"))?;

    let secret = env.get(TOOL_SECRET_VAR).cloned().unwrap_or_default();
    let now = now_unix();
    let jwt = encode(
        &Header::default(),
        &json!({"iss": "demo", "sub": USER, "aud": public_url, "iat": now, "exp": now + 86_000, "lms_user_id": 42}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("error: {e}"))?;
    print_steps(&public_url, &sandbox_origin, &dir, scratch, &jwt);
    let served = lms_proxy::server::run(config, access).map_err(|e| format!("error: {e}"));
    if scratch {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("demo: could not remove {}: {e}", dir.display());
        }
    }
    served
}

fn start_sandbox(client_secret: String) -> Result<String, String> {
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
                let key = crate::lms::DeveloperKey {
                    client_id: crate::lms::DEFAULT_CLIENT_ID.to_string(),
                    client_secret,
                };
                crate::lms::start(listener, None, None, key, crate::lms::Kind::Canvas)
            }
            .await;
            let _ = tx.send(started);
            std::future::pending::<()>().await;
        });
    });
    rx.recv()
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("error: sandbox: {e}"))
}

fn demo_config(listen: &SocketAddr, public_url: &str, sandbox: &str) -> String {
    format!(
        r#"# Written by `lms-sandbox demo` (./dev demo); secrets come from the demo process itself.
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

fn print_steps(public_url: &str, sandbox: &str, dir: &std::path::Path, scratch: bool, jwt: &str) {
    let kept = if scratch {
        "removed when the demo stops; --data-dir DIR keeps them"
    } else {
        "kept when the demo stops"
    };
    println!(
        r#"
lms-proxy demo
  sandbox LMS (Canvas emulator): {sandbox}
  proxy:                         {public_url}   (route /canvas -> the sandbox)
  config, SQLite store, cookies: {dir}
                                 ({kept})

The tool "demo" acts for its user "ada" (Ada Lovelace, user 42 in the sandbox LMS).
Its JWT, as a tool would send it:

   TOKEN='{jwt}'

1. Ada has not connected yet: the proxy answers 401 authorization_required with a
   consent URL.

   curl -i -H "Authorization: Bearer $TOKEN" {public_url}/canvas/api/v1/users/self

2. Open that authorize_url in a browser and click "Authorize as Ada Lovelace".
   Without a browser, curl can play one. The proxy sends the browser to the sandbox's
   consent page (/login/oauth2/auth) with a state cookie (hence the cookie jar); the
   page's button goes to /login/oauth2/confirm with the same query plus sandbox_user=42,
   which is what the third line asks for directly, following the redirects back:

   URL=$(curl -s -H "Authorization: Bearer $TOKEN" {public_url}/canvas/api/v1/users/self | sed 's/.*"authorize_url":"\([^"]*\)".*/\1/')
   AUTH=$(curl -s -c {jar} -o /dev/null -w '%{{redirect_url}}' "$URL")
   curl -s -L -b {jar} "${{AUTH/\/auth?/\/confirm?}}&sandbox_user=42"

3. Now the same call goes through with Ada's LMS token, which the tool never sees:

   curl -s -H "Authorization: Bearer $TOKEN" {public_url}/canvas/api/v1/users/self

4. Pagination stays on the proxy: every Link URL points back at {public_url}/canvas.

   curl -s -D - -H "Authorization: Bearer $TOKEN" '{public_url}/canvas/api/v1/courses?per_page=5'

5. The tool can ask whether Ada is connected, and disconnect her (revoked at the LMS):

   curl -s -H "Authorization: Bearer $TOKEN" {public_url}/api/oauth/status/canvas
   curl -s -X DELETE -H "Authorization: Bearer $TOKEN" {public_url}/api/oauth/token/canvas

Stop with Ctrl-C.
"#,
        dir = dir.display(),
        jar = dir.join("cookies.jar").display()
    );
}
