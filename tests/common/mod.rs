//! Helpers for integration tests: the real `lms-proxy` binary and the `lms-sandbox` LMS on loopback,
//! each on an ephemeral port, each stopped when its handle drops.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod postgres;

pub const BIN: &str = env!("CARGO_BIN_EXE_lms-proxy");

/// The `lms-sandbox` binary, built beside `lms-proxy` (`./dev test` builds both; a bare
/// `cargo test` needs `cargo build -p lms-sandbox` first).
pub fn sandbox_bin() -> PathBuf {
    let path = std::path::Path::new(BIN)
        .with_file_name(format!("lms-sandbox{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the tests with ./dev test, or cargo build -p lms-sandbox first",
        path.display()
    );
    path
}
pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const TOOL_SECRET: &str = "quiz-tool-secret-quiz-tool-secret-0123";
pub const OTHER_SECRET: &str = "other-tool-secret-other-tool-secret-99";
pub const CLIENT_SECRET: &str = "canvas-client-secret-value";
/// The API key whose SHA-256 the test config lists for the quiz tool.
pub const API_KEY: &str = "job-api-key-0123456789";
const STARTUP: Duration = Duration::from_secs(30);

pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn client() -> reqwest::Client {
    init_tls();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// Ports `free_port` handed out, each still bound (not listening) by this process until
/// `release_port`: the tests of one binary run at once, and a port closed as soon as it was
/// picked could be picked again by another test, whose proxy would then answer this test's
/// requests. Until released, nothing listens there, so a connection to it is refused.
static HELD: Mutex<Vec<(u16, tokio::net::TcpSocket)>> = Mutex::new(Vec::new());

pub fn free_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind a free port");
    let port = socket.local_addr().expect("local address").port();
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((port, socket));
    port
}

/// Frees a port from `free_port` for the process that is about to listen on it.
pub fn release_port(port: u16) {
    HELD.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(held, _)| *held != port);
}

/// Kills the child when dropped, so a failing test leaves nothing running.
pub struct Running {
    pub child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SandboxLms {
    pub origin: String,
    _process: Running,
}

impl SandboxLms {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(args: &[&str]) -> Self {
        let mut child = Command::new(sandbox_bin())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("SANDBOX_CLIENT_SECRET", CLIENT_SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sandbox");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sandbox line");
        let origin = line
            .trim()
            .strip_prefix("sandbox LMS listening on ")
            .unwrap_or_else(|| panic!("unexpected sandbox output {line:?}"))
            .to_string();
        Self {
            origin,
            _process: Running { child },
        }
    }

    /// A token as if the user had consented: what operators import.
    pub async fn issue(&self, user_id: u64, expires_in: i64, scopes: Option<Vec<&str>>) -> String {
        self.grant(user_id, expires_in, scopes).await.0
    }

    /// (access token, refresh token) of a new grant.
    pub async fn grant(
        &self,
        user_id: u64,
        expires_in: i64,
        scopes: Option<Vec<&str>>,
    ) -> (String, String) {
        let body = self
            .admin(
                "tokens",
                json!({"user_id": user_id, "expires_in": expires_in, "scopes": scopes}),
            )
            .await;
        (
            body["access_token"].as_str().expect("token").to_string(),
            body["refresh_token"].as_str().expect("refresh").to_string(),
        )
    }

    /// POST to one of the sandbox's `/__sandbox/...` controls.
    pub async fn admin(&self, what: &str, body: Value) -> Value {
        let r = client()
            .post(format!("{}/__sandbox/{what}", self.origin))
            .json(&body)
            .send()
            .await
            .expect("sandbox control");
        assert!(r.status().is_success(), "sandbox {what}: {}", r.status());
        r.json().await.expect("sandbox json")
    }

    pub async fn stats(&self) -> Value {
        client()
            .get(format!("{}/__sandbox/stats", self.origin))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    /// One of the sandbox's counters (`refresh_token`, `refresh_refused`, `revocations`, ...).
    pub async fn counter(&self, name: &str) -> u64 {
        self.stats().await[name].as_u64().expect("counter")
    }

    pub async fn fill_bucket(&self, token: &str, level: f64) {
        self.admin("throttle", json!({"access_token": token, "level": level}))
            .await;
    }
}

/// A config directory with `lms-proxy.toml` and the environment the config names.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub env: HashMap<String, String>,
}

impl Setup {
    /// The standard test config: platform `canvas` at `lms_origin`, route `/canvas`, tools
    /// `quiz` (HS256 + an API key) and `other`, plus `extra` TOML appended.
    pub fn new(lms_origin: &str, extra: &str) -> Self {
        Self::with_platform(lms_origin, "", extra)
    }

    /// Like `new`, with `platform_extra` TOML inside the `canvas` platform's table.
    pub fn with_platform(lms_origin: &str, platform_extra: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let api_key_hash = sha256_hex(API_KEY);
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
key_env = "LMS_PROXY_KEY"
threads = 2

[store]
url = "sqlite://data/lms-proxy.db"

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "{lms_origin}"
client_id = "10000000000001"
client_secret_env = "CANVAS_CLIENT_SECRET"
read_timeout_ms = 2000
{platform_extra}

[[routes]]
prefix = "/canvas"
platform = "canvas"

[[routes]]
prefix = "/limited"
platform = "canvas"
allow = ["GET /api/v1/users/self", "POST /api/v1/courses/*/discussion_topics"]

[[tools]]
id = "quiz"
secret_env = "QUIZ_TOOL_SECRET"
api_key_sha256 = ["{api_key_hash}"]
platforms = ["canvas"]
return_to = ["https://quiz.example.edu/"]

[[tools]]
id = "other"
secret_env = "OTHER_TOOL_SECRET"
platforms = ["canvas"]

[[tools]]
id = "nowhere"
secret_env = "NOWHERE_TOOL_SECRET"
platforms = ["elsewhere"]

[[platforms]]
id = "elsewhere"
kind = "canvas"
base_url = "http://127.0.0.1:9"
client_id = "1"
client_secret_env = "CANVAS_CLIENT_SECRET"
{extra}
"#
        );
        std::fs::write(dir.path().join("lms-proxy.toml"), config).expect("write config");
        let env = HashMap::from([
            ("LMS_PROXY_KEY".to_string(), MASTER_KEY.to_string()),
            ("QUIZ_TOOL_SECRET".to_string(), TOOL_SECRET.to_string()),
            ("OTHER_TOOL_SECRET".to_string(), OTHER_SECRET.to_string()),
            (
                "EXPORTER_TOOL_SECRET".to_string(),
                "exporter-tool-secret-exporter-tool-secret".to_string(),
            ),
            (
                "NOWHERE_TOOL_SECRET".to_string(),
                "nowhere-tool-secret-nowhere-tool-secret".to_string(),
            ),
            (
                "CANVAS_CLIENT_SECRET".to_string(),
                CLIENT_SECRET.to_string(),
            ),
        ]);
        Self { dir, port, env }
    }

    /// Moves the store to the PostgreSQL database at `url` (given as `url_env`, since it may
    /// hold a password) and every instance's `public_url` to `public_url`: instances behind
    /// one load balancer share it, so a tool's JWT and a consent work on any of them.
    pub fn on_postgres(&mut self, url: &str, public_url: &str) {
        self.edit_config(|text| {
            text.replace(
                "url = \"sqlite://data/lms-proxy.db\"",
                "url_env = \"LMS_PROXY_DATABASE_URL\"",
            )
            .replace(
                &format!("public_url = \"http://127.0.0.1:{}\"", self.port),
                &format!("public_url = \"{public_url}\""),
            )
        });
        self.env
            .insert("LMS_PROXY_DATABASE_URL".into(), url.to_string());
    }

    /// Adds a platform `id` of `kind` on `lms_origin` with `keys` (TOML lines) and a route
    /// `/{id}` to it, and lets the quiz tool use it.
    pub fn add_platform(&self, id: &str, kind: &str, lms_origin: &str, keys: &str) {
        self.edit_config(|t| {
            format!(
                "{}\n[[platforms]]\nid = \"{id}\"\nkind = \"{kind}\"\nbase_url = \"{lms_origin}\"\nclient_id = \"10000000000001\"\nclient_secret_env = \"CANVAS_CLIENT_SECRET\"\n{keys}\n\n[[routes]]\nprefix = \"/{id}\"\nplatform = \"{id}\"\n",
                t.replacen(
                    "platforms = [\"canvas\"]\nreturn_to",
                    &format!("platforms = [\"canvas\", \"{id}\"]\nreturn_to"),
                    1,
                )
            )
        });
    }

    /// `tokens import` of one grant for `user` of tool quiz on `platform`.
    pub fn import_on(
        &self,
        platform: &str,
        user: &str,
        grant: (&str, &str),
        expires_at: i64,
        lms_user_id: &str,
    ) {
        let out = self.cli(
            &[
                "tokens", "import", "-c", "{config}", "--platform", platform, "--tool", "quiz",
            ],
            Some(&format!(
                "{{\"user\":\"{user}\",\"access_token\":\"{}\",\"refresh_token\":\"{}\",\"expires_at\":{expires_at},\"lms_user_id\":\"{lms_user_id}\"}}\n",
                grant.0, grant.1
            )),
        );
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Rewrites the config file through `edit`.
    pub fn edit_config(&self, edit: impl FnOnce(&str) -> String) {
        let text = std::fs::read_to_string(self.config_path()).expect("config");
        std::fs::write(self.config_path(), edit(&text)).expect("write config");
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("lms-proxy.toml")
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("data/lms-proxy.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path` on the proxy with `credential` as the bearer (a tool JWT or API key).
    pub async fn get_as(
        &self,
        credential: impl std::fmt::Display,
        path: &str,
    ) -> reqwest::Response {
        client()
            .get(self.url(path))
            .bearer_auth(credential)
            .send()
            .await
            .expect("request")
    }

    /// Runs a CLI command with this setup's environment and `-c CONFIG` where `{config}` stands.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let config = self.config_path();
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{config}", &config.to_string_lossy()))
            .collect();
        run(BIN, &args, &self.env, stdin)
    }

    pub fn mint(&self, tool: &str, user: &str) -> String {
        let out = self.cli(
            &["mint", "-c", "{config}", "--tool", tool, "--user", user],
            None,
        );
        assert!(
            out.status.success(),
            "mint failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }

    /// `tokens import` of JSON `lines` for `tool` on platform canvas; asserts it worked.
    pub fn import(&self, tool: &str, lines: &str) {
        let out = self.try_import(tool, lines);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `tokens import`, whatever comes of it.
    pub fn try_import(&self, tool: &str, lines: &str) -> Output {
        self.cli(
            &[
                "tokens",
                "import",
                "-c",
                "{config}",
                "--platform",
                "canvas",
                "--tool",
                tool,
            ],
            Some(lines),
        )
    }

    /// Imports a grant for `user` of tool quiz (LMS user 42) expiring at `expires_at`.
    pub fn import_grant(&self, user: &str, access: &str, refresh: &str, expires_at: i64) {
        self.import(
            "quiz",
            &format!("{{\"user\":\"{user}\",\"access_token\":\"{access}\",\"refresh_token\":\"{refresh}\",\"expires_at\":{expires_at},\"lms_user_id\":42}}\n"),
        );
    }

    /// The user keys with a stored grant, as `tokens list` shows them.
    pub fn stored_users(&self) -> Vec<String> {
        let out = self.cli(&["tokens", "list", "-c", "{config}", "--json"], None);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json line")["user"]
                    .as_str()
                    .expect("user")
                    .to_string()
            })
            .collect()
    }

    /// A tool JWT that names the user's LMS id too.
    pub fn mint_with_lms_user(&self, tool: &str, user: &str, lms_user_id: &str) -> String {
        let out = self.cli(
            &[
                "mint",
                "-c",
                "{config}",
                "--tool",
                tool,
                "--user",
                user,
                "--lms-user-id",
                lms_user_id,
            ],
            None,
        );
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_string()
    }

    /// Starts `lms-proxy run` and waits until it answers; logs go to `proxy.log` as JSON.
    pub fn start_proxy(&self) -> Proxy {
        let config = std::fs::read_to_string(self.config_path()).expect("config");
        for line in config.lines() {
            if let Some(port) = listen_port(line) {
                release_port(port);
            }
        }
        let log = self.dir.path().join("proxy.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BIN)
            .args(["--log-format", "json", "run", "-c"])
            .arg(self.config_path())
            .envs(&self.env)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start proxy");
        let mut proxy = Proxy {
            log,
            _process: Running { child },
        };
        wait_until_up(&self.url("/healthz"), &mut proxy);
        proxy
    }
}

/// The port of a `listen = "127.0.0.1:N"` or `metrics_listen = ...` line of a config.
fn listen_port(line: &str) -> Option<u16> {
    let (key, value) = line.split_once('=')?;
    if !matches!(key.trim(), "listen" | "metrics_listen") {
        return None;
    }
    value
        .trim()
        .trim_matches('"')
        .rsplit(':')
        .next()?
        .parse()
        .ok()
}

pub struct Proxy {
    pub log: PathBuf,
    _process: Running,
}

impl Proxy {
    pub fn pid(&self) -> u32 {
        self._process.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log once `done` holds for it, or as it is after five seconds: access lines are
    /// written in batches, a moment after the answer.
    pub async fn log_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = self.log_text();
            if done(&text) || Instant::now() > deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits (at most 20 s) for the process to end: its exit status, if it
    /// ended, and the whole log it left.
    pub fn terminate(self) -> (Option<std::process::ExitStatus>, String) {
        self.stop_with("-TERM")
    }

    /// Like `terminate`, with SIGINT (Ctrl-C).
    pub fn interrupt(self) -> (Option<std::process::ExitStatus>, String) {
        self.stop_with("-INT")
    }

    fn stop_with(mut self, signal: &str) -> (Option<std::process::ExitStatus>, String) {
        let pid = self._process.child.id().to_string();
        let sent = Command::new("kill").args([signal, &pid]).status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill {signal} {pid} failed"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            match self._process.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => break None,
            }
        };
        (status, self.log_text())
    }
}

fn wait_until_up(url: &str, proxy: &mut Proxy) {
    let log = proxy.log.clone();
    let deadline = Instant::now() + STARTUP;
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("addr")
        .to_string();
    while Instant::now() < deadline {
        if let Ok(Some(status)) = proxy._process.child.try_wait() {
            panic!(
                "proxy exited ({status}) before it came up on {url}; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(&addr) {
            let _ =
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            let _ = std::io::Read::read_to_string(&mut stream, &mut response);
            if response.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "proxy did not come up on {url}; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

pub fn run(
    bin: &str,
    args: &[String],
    env: &HashMap<String, String>,
    stdin: Option<&str>,
) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).expect("stdin");
        }
    }
    child.wait_with_output().expect("output")
}

/// Alice's token is good for an hour as far as the proxy knows, but the LMS has expired it.
pub async fn expired_at_the_lms() -> (SandboxLms, Setup, Proxy, String) {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() + 3600);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    lms.admin("expire", json!({"access_token": access})).await;
    (lms, setup, proxy, jwt)
}

/// Alice's grant, imported; the access token already expired as far as the proxy knows, so
/// her next request refreshes.
pub async fn due_for_refresh() -> (SandboxLms, Setup, Proxy, String) {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    (lms, setup, proxy, jwt)
}

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// Decodes a JWT's payload without checking it (to look at what `mint` wrote).
pub fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

pub async fn json_of(response: reqwest::Response) -> Value {
    response.json::<Value>().await.expect("json body")
}

/// Sends raw bytes and returns the whole answer, for requests HTTP clients refuse to make.
pub fn raw_request(port: u16, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// What a browser sees going through consent, step by step.
pub struct Consent {
    /// The LMS authorize URL the proxy redirected to.
    pub authorize: url::Url,
    /// `name=value` of the state cookie the proxy set.
    pub cookie: String,
    /// The full Set-Cookie header.
    pub set_cookie: String,
}

/// Opens a start URL like a browser: expects the 302 to the LMS and the state cookie.
pub async fn begin_consent(start_url: &str) -> Consent {
    let r = client().get(start_url).send().await.expect("start");
    assert_eq!(
        r.status(),
        302,
        "start answered {}: {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
    let authorize =
        url::Url::parse(r.headers()["location"].to_str().unwrap()).expect("authorize url");
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    Consent {
        authorize,
        cookie,
        set_cookie,
    }
}

impl Consent {
    /// The user picks `sandbox_user` (or denies with `None`) on the sandbox's page; returns
    /// the callback URL the LMS redirects the browser to.
    pub async fn decide(&self, sandbox_user: Option<u64>) -> String {
        let mut confirm = self.authorize.clone();
        confirm.set_path("/login/oauth2/confirm");
        match sandbox_user {
            Some(u) => confirm
                .query_pairs_mut()
                .append_pair("sandbox_user", &u.to_string()),
            None => confirm.query_pairs_mut().append_pair("sandbox_deny", "1"),
        };
        let r = client().get(confirm).send().await.expect("confirm");
        assert_eq!(r.status(), 302);
        r.headers()["location"].to_str().unwrap().to_string()
    }

    /// Follows the callback with the state cookie, as the browser would.
    pub async fn callback(&self, callback_url: &str) -> reqwest::Response {
        client()
            .get(callback_url)
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("callback")
    }

    /// The whole flow for a user: returns the callback's answer.
    pub async fn complete(&self, sandbox_user: u64) -> reqwest::Response {
        let callback = self.decide(Some(sandbox_user)).await;
        self.callback(&callback).await
    }
}

/// On `platform`, through `path`: tool user "bob", whose access token the LMS no longer
/// takes, is refreshed and replayed (200); tool user "cy", whose grant the LMS removed, is
/// refused, deleted here and told `authorization_required`. Each gets a fresh grant of LMS
/// user 42, known to the proxy as `lms_user_id`.
pub async fn dead_token_replayed_then_refused_grant(
    lms: &SandboxLms,
    setup: &Setup,
    platform: &str,
    path: &str,
    lms_user_id: &str,
) {
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_on(
        platform,
        "bob",
        (&access, &refresh),
        now() + 3600,
        lms_user_id,
    );
    lms.admin("expire", json!({"access_token": access})).await;
    let r = setup.get_as(setup.mint("quiz", "bob"), path).await;
    assert_eq!(r.status(), 200, "a dead token is refreshed and replayed");

    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_on(
        platform,
        "cy",
        (&access, &refresh),
        now() + 3600,
        lms_user_id,
    );
    lms.admin("revoke_grant", json!({"access_token": access}))
        .await;
    let r = setup.get_as(setup.mint("quiz", "cy"), path).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "authorization_required");
    assert!(!setup.stored_users().contains(&"cy".to_string()));
}

/// The tool user behind `jwt` calls `path`, is told to connect, and consents on the sandbox
/// as `sandbox_user`: the callback's redirect (`lms_proxy_error=...` when refused).
pub async fn consent_after_refusal(
    setup: &Setup,
    jwt: &str,
    path: &str,
    sandbox_user: u64,
) -> String {
    let r = setup.get_as(jwt, path).await;
    assert_eq!(r.status(), 401);
    let consent = begin_consent(json_of(r).await["authorize_url"].as_str().unwrap()).await;
    let done = consent.complete(sandbox_user).await;
    done.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The access token lives 2 s at the LMS and the proxy's copy is due at once: each of
/// `rounds` calls (1.6 s apart) refreshes exactly once, and with rotation no used refresh
/// token is ever sent again (`refresh_refused` stays 0).
pub async fn refreshes_once_per_round(
    lms: &SandboxLms,
    setup: &Setup,
    jwt: &str,
    path: &str,
    rounds: u64,
) {
    lms.admin("settings", json!({"access_token_ttl": 2})).await;
    for round in 1..=rounds {
        let r = setup.get_as(jwt, path).await;
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(lms.counter("refresh_token").await, round);
        tokio::time::sleep(Duration::from_millis(1600)).await;
    }
    assert_eq!(lms.counter("refresh_refused").await, 0);
}
