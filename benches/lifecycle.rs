//! Two measurements that are not throughput, printed as JSON lines for benches/report.py:
//!
//! - refresh storm: 1,000 concurrent requests through the real binary for one user whose
//!   token just expired; how many token-endpoint calls the sandbox LMS saw (must be 1) and how
//!   long until every request was answered;
//! - memory: resident memory of the token cache with 100,000 and 1,000,000 users, in bytes
//!   per user (the store behind it is a no-op, so only the cache is counted).
//!
//! `cargo bench --bench lifecycle`

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lms_proxy::config::{MasterKey, TokensConfig};
use lms_proxy::crypto::Crypto;
use lms_proxy::expiry::now_unix;
use lms_proxy::store::{
    GrantStore, ListFilter, StoreError, StoredToken, TokenSummary, Version, Versioned,
};
use lms_proxy::tokens::{TokenRecord, Tokens};
use lms_proxy::types::{AccessToken, PlatformId, RefreshToken, TokenKey, ToolId, UserKey};

const BIN: &str = env!("CARGO_BIN_EXE_lms-proxy");

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(refresh_storm(1000, 1, None));
    // Across instances: three proxies on one PostgreSQL database, when one is named.
    if let Ok(url) = std::env::var("LMS_PROXY_BENCH_DATABASE_URL") {
        rt.block_on(refresh_storm(1000, 3, Some(url)));
    }
    for users in [100_000, 1_000_000] {
        rt.block_on(cache_memory(users));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// `concurrency` requests for one just-expired user, spread round-robin over `instances`
/// proxies on the SQLite store (one instance) or on the PostgreSQL database at `database`.
async fn refresh_storm(concurrency: usize, instances: usize, database: Option<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Built beside lms-proxy: benches/run builds the workspace first.
    let sandbox_bin = std::path::Path::new(BIN).with_file_name("lms-sandbox");
    let mut sandbox = Command::new(sandbox_bin)
        .args(["--listen", "127.0.0.1:0"])
        .env("SANDBOX_CLIENT_SECRET", "storm-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox");
    let mut line = String::new();
    BufReader::new(sandbox.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("origin");
    let _sandbox = Killed(sandbox);
    let lms = line
        .trim()
        .trim_start_matches("sandbox LMS listening on ")
        .to_string();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let grant: serde_json::Value = http
        .post(format!("{lms}/__sandbox/tokens"))
        .json(&serde_json::json!({"user_id": 42}))
        .send()
        .await
        .expect("grant")
        .json()
        .await
        .expect("grant json");

    let ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
    let public_url = format!("http://127.0.0.1:{}", ports[0]);
    let store = match &database {
        Some(_) => "url_env = \"DB\"",
        None => "url = \"sqlite://t.db\"",
    };
    let configs: Vec<String> = ports
        .iter()
        .map(|port| {
            let config = dir.path().join(format!("lms-proxy-{port}.toml"));
            std::fs::write(
                &config,
                format!(
                    r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{public_url}"
key_env = "KEY"
threads = 2
[store]
{store}
[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "{lms}"
client_id = "10000000000001"
client_secret_env = "SECRET"
[[routes]]
prefix = "/canvas"
platform = "canvas"
[[tools]]
id = "storm"
secret_env = "TOOL"
platforms = ["canvas"]
"#
                ),
            )
            .expect("config");
            config.to_string_lossy().to_string()
        })
        .collect();
    let env = [
        (
            "KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string(),
        ),
        ("SECRET", "storm-secret".to_string()),
        (
            "TOOL",
            "storm-tool-secret-storm-tool-secret-0123".to_string(),
        ),
        ("DB", database.clone().unwrap_or_default()),
    ];
    // One user per run, so a database used before holds nothing that matters.
    let user = format!("u-{}-{instances}", now_unix());
    let cli = |args: &[&str], stdin: Option<String>| {
        let mut child = Command::new(BIN)
            .args(args)
            .envs(env.clone())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cli");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            std::io::Write::write_all(&mut pipe, text.as_bytes()).expect("stdin");
        }
        String::from_utf8(child.wait_with_output().expect("cli output").stdout).expect("utf8")
    };
    let config_arg = configs[0].clone();
    cli(
        &["tokens", "import", "-c", &config_arg, "--platform", "canvas", "--tool", "storm"],
        Some(format!(
            "{{\"user\":\"{user}\",\"access_token\":\"{}\",\"refresh_token\":\"{}\",\"expires_at\":{}}}\n",
            grant["access_token"].as_str().unwrap_or_default(),
            grant["refresh_token"].as_str().unwrap_or_default(),
            now_unix() - 1
        )),
    );
    let jwt = cli(
        &[
            "mint",
            "-c",
            &config_arg,
            "--tool",
            "storm",
            "--user",
            &user,
        ],
        None,
    )
    .trim()
    .to_string();
    let _proxies: Vec<Killed> = configs
        .iter()
        .map(|config| {
            Killed(
                Command::new(BIN)
                    .args(["run", "-c", config])
                    .envs(env.clone())
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("proxy"),
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for port in &ports {
        while http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "proxy did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let started = Instant::now();
    let requests: Vec<_> = (0..concurrency)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "http://127.0.0.1:{}/canvas/api/v1/users/self",
                ports[i % ports.len()]
            );
            let jwt = jwt.clone();
            tokio::spawn(async move {
                http.get(url)
                    .bearer_auth(jwt)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<String, u64>::new();
    for r in requests {
        let key = match r.await {
            Ok(Ok(status)) => status.to_string(),
            _ => "error".to_string(),
        };
        *statuses.entry(key).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let stats: serde_json::Value = http
        .get(format!("{lms}/__sandbox/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("stats json");
    println!(
        "{}",
        serde_json::json!({
            "bench": "refresh_storm",
            "concurrent_requests": concurrency,
            "instances": instances,
            "store": if database.is_some() { "postgres" } else { "sqlite" },
            // Canvas's throttle (600 per token) answers the rest 403, as the sandbox does.
            "statuses": statuses,
            "token_endpoint_calls": stats["refresh_token"],
            "all_answered_ms": elapsed.as_secs_f64() * 1000.0,
        })
    );
}

/// A store that keeps nothing, so only the cache's memory is measured.
struct NoStore;

#[async_trait]
impl GrantStore for NoStore {
    async fn get(&self, _: &TokenKey) -> Result<Option<Versioned>, StoreError> {
        Ok(None)
    }
    async fn put(&self, _: StoredToken) -> Result<Version, StoreError> {
        Ok(Version(1))
    }
    async fn put_all(&self, _: Vec<StoredToken>) -> Result<(), StoreError> {
        Ok(())
    }
    async fn replace(&self, _: StoredToken, _: Version) -> Result<Option<Version>, StoreError> {
        Ok(None)
    }
    async fn delete(&self, _: &TokenKey) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn delete_version(&self, _: &TokenKey, _: Version) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn list(&self, _: &ListFilter) -> Result<Vec<TokenSummary>, StoreError> {
        Ok(vec![])
    }
    async fn export(&self) -> Result<Vec<StoredToken>, StoreError> {
        Ok(vec![])
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

async fn cache_memory(users: u64) {
    let config = TokensConfig {
        refresh_skew: Duration::from_secs(60),
        cache_capacity: users + 1,
        cache_ttl: Duration::from_secs(3600),
    };
    let tokens = Tokens::new(
        Arc::new(NoStore),
        Arc::new(Crypto::new(&MasterKey([7; 32]))),
        &config,
    );
    let platform = PlatformId::new("canvas");
    let tool = ToolId::new("quiz");
    let before = rss_bytes();
    let now = now_unix();
    for i in 0..users {
        // Sizes as Canvas has them: "1~" + 64 characters; LTI `sub` values are UUIDs.
        let record = TokenRecord {
            access_token: AccessToken::new(format!("1~{i:064}")),
            refresh_token: Some(RefreshToken::new(format!("1~{:064}", i + 1))),
            expires_at: Some(now + 3600),
            lms_user_id: Some((100_000 + i).to_string()),
            obtained_at: now,
        };
        let user = UserKey::new(format!("{i:08}-0000-4000-8000-000000000000"));
        let _ = tokens
            .save(TokenKey::new(platform.clone(), tool.clone(), user), record)
            .await;
    }
    let after = rss_bytes();
    println!(
        "{}",
        serde_json::json!({
            "bench": "cache_memory",
            "users": users,
            "rss_growth_bytes": after.saturating_sub(before),
            "bytes_per_user": after.saturating_sub(before) as f64 / users as f64,
        })
    );
    drop(tokens);
}
