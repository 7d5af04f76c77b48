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

use crate::state::Kind;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Folder for the demo's config and SQLite file (default: a new temporary folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Which LMS the sandbox answers as, and the proxy's platform kind.
    #[arg(long, value_enum, default_value = "canvas")]
    kind: Kind,
}

/// What the demo shows for each kind: its route, the platform keys the sandbox needs, the
/// who-am-I call, a paged list, and Ada's id as that LMS names her.
struct Walkthrough {
    kind: &'static str,
    lms: &'static str,
    route: &'static str,
    keys: fn(&str) -> String,
    me: &'static str,
    list: &'static str,
    paging: &'static str,
    lms_user_id: String,
}

fn walkthrough(kind: Kind) -> Walkthrough {
    match kind {
        Kind::Canvas => Walkthrough {
            kind: "canvas",
            lms: "Canvas",
            route: "/canvas",
            keys: |_| String::new(),
            me: "/api/v1/users/self",
            list: "/api/v1/courses?per_page=5",
            paging: "every Link URL points back at the proxy",
            lms_user_id: "42".into(),
        },
        Kind::Brightspace => Walkthrough {
            kind: "brightspace",
            lms: "Brightspace",
            route: "/brightspace",
            keys: |lms| {
                format!(
                    "authorize_url = \"{lms}/oauth2/auth\"\ntoken_url = \"{lms}/core/connect/token\"\nscopes = [\"core:*:*\"]\n"
                )
            },
            me: "/d2l/api/lp/1.0/users/whoami",
            list: "/d2l/api/le/1.67/6606/classlist/paged/",
            paging: "the Next URL in the JSON body points back at the proxy",
            lms_user_id: "42".into(),
        },
        Kind::Blackboard => Walkthrough {
            kind: "blackboard",
            lms: "Blackboard Learn",
            route: "/blackboard",
            keys: |_| "scopes = [\"read\"]\n".to_string(),
            me: "/learn/api/public/v1/users/me",
            list: "/learn/api/public/v3/courses",
            paging: "paging.nextPage is root-relative: append it to the route's base URL",
            lms_user_id: crate::state::blackboard_uuid(42),
        },
        Kind::Oauth2 => Walkthrough {
            kind: "oauth2",
            lms: "a generic OAuth2 server",
            route: "/generic",
            keys: |lms| format!("issuer = \"{lms}\"\nscopes = [\"api\"]\n"),
            me: "/api/v1/users/self",
            list: "/api/v1/courses?per_page=5",
            paging: "every Link URL points back at the proxy",
            lms_user_id: "42".into(),
        },
    }
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
    let sandbox_origin = start_sandbox(client_secret, args.kind)?;
    let walk = walkthrough(args.kind);
    let public_url = format!("http://{}", args.listen);
    let config_text = demo_config(&args.listen, &public_url, &sandbox_origin, &walk);
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
        &json!({"iss": "demo", "sub": USER, "aud": public_url, "iat": now, "exp": now + 86_000, "lms_user_id": walk.lms_user_id}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| format!("error: {e}"))?;
    print_steps(&walk, &public_url, &sandbox_origin, &dir, scratch, &jwt);
    let served = lms_proxy::server::run(config, access).map_err(|e| format!("error: {e}"));
    if scratch {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("demo: could not remove {}: {e}", dir.display());
        }
    }
    served
}

fn start_sandbox(client_secret: String, kind: Kind) -> Result<String, String> {
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
                crate::lms::start(listener, None, None, key, kind)
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

fn demo_config(listen: &SocketAddr, public_url: &str, sandbox: &str, walk: &Walkthrough) -> String {
    let (kind, route, keys) = (walk.kind, walk.route, (walk.keys)(sandbox));
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
id = "{kind}"
kind = "{kind}"
base_url = "{sandbox}"
client_id = "10000000000001"
client_secret_env = "CANVAS_CLIENT_SECRET"
{keys}
[[routes]]
prefix = "{route}"
platform = "{kind}"

[[tools]]
id = "demo"
secret_env = "{TOOL_SECRET_VAR}"
platforms = ["{kind}"]
"#
    )
}

fn print_steps(
    walk: &Walkthrough,
    public_url: &str,
    sandbox: &str,
    dir: &std::path::Path,
    scratch: bool,
    jwt: &str,
) {
    let api = format!("{public_url}{}", walk.route);
    let (me, list, paging, lms, route) = (walk.me, walk.list, walk.paging, walk.lms, walk.route);
    let id = walk.kind;
    let kept = if scratch {
        "removed when the demo stops; --data-dir DIR keeps them"
    } else {
        "kept when the demo stops"
    };
    println!(
        r#"
lms-proxy demo
  sandbox LMS ({lms}): {sandbox}
  proxy:       {public_url}   (route {route} -> the sandbox)
  config, SQLite store, cookies: {dir}
                                 ({kept})

The tool "demo" acts for its user "ada" (Ada Lovelace, user 42 in the sandbox LMS).
Its JWT, as a tool would send it:

   TOKEN='{jwt}'

1. Ada has not connected yet: the proxy answers 401 authorization_required with a
   consent URL.

   curl -i -H "Authorization: Bearer $TOKEN" {api}{me}

2. Open that authorize_url in a browser and click "Authorize as Ada Lovelace".
   Without a browser, curl can play one. The proxy sends the browser to the sandbox's
   consent page with a state cookie (hence the cookie jar); the page's button goes to
   /login/oauth2/confirm with the same query plus sandbox_user=42, which is what the
   last line asks for directly, following the redirects back:

   URL=$(curl -s -H "Authorization: Bearer $TOKEN" {api}{me} | sed 's/.*"authorize_url":"\([^"]*\)".*/\1/')
   AUTH=$(curl -s -c {jar} -o /dev/null -w '%{{redirect_url}}' "$URL")
   curl -s -L -b {jar} "{sandbox}/login/oauth2/confirm?${{AUTH#*\?}}&sandbox_user=42"

3. Now the same call goes through with Ada's LMS token, which the tool never sees:

   curl -s -H "Authorization: Bearer $TOKEN" {api}{me}

4. Pagination stays on the proxy: {paging}.

   curl -s -D - -H "Authorization: Bearer $TOKEN" '{api}{list}'

5. The tool can ask whether Ada is connected, and disconnect her:

   curl -s -H "Authorization: Bearer $TOKEN" {public_url}/api/oauth/status/{id}
   curl -s -X DELETE -H "Authorization: Bearer $TOKEN" {public_url}/api/oauth/token/{id}

Stop with Ctrl-C.
"#,
        dir = dir.display(),
        jar = dir.join("cookies.jar").display()
    );
}
