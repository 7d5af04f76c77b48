//! What an outside security review found failing open, each held shut against the real
//! binary and the sandbox LMS: credentials, grants, back-off, connections, claims, paths,
//! files, logs and shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status);
    let body = json_of(r).await;
    assert_eq!(body["error"], code, "{body}");
    body
}

/// Alice connected with a token valid for an hour, the proxy running: (setup, proxy, her tool
/// JWT, her LMS access token).
async fn alice_connected(lms: &SandboxLms, extra: &str) -> (Setup, Proxy, String, String) {
    let setup = Setup::new(&lms.origin, extra);
    let access = lms.issue(42, 3600, None).await;
    setup.import_grant("alice", &access, "r", now() + 3600);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    (setup, proxy, jwt, access)
}

// 1. The tool's credential never reaches the LMS; malformed tokens are refused where they enter.

#[tokio::test]
async fn import_refuses_tokens_that_cannot_be_a_header_and_echoes_none() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let lines = [
        r#"{"user":"u1","access_token":"EVIL\nX-Leak: secret-one"}"#,
        r#"{"user":"u2","access_token":"ok","refresh_token":"has space secret-two"}"#,
        r#"{"user":"u3","access_token":"tab\tsecret-three"}"#,
        r#"{"user":"u4","access_token":"ok","expires_in":9223372036854775807}"#,
        r#"{"user":"u5","access_token":"ok","expires_at":-9223372036854775808}"#,
        r#"{"user":"u6","access_token":"ok","expires_at":"10000-01-01T00:00:00Z"}"#,
        r#"{"user":"u7","access_token":"ok","expires_at":9223372036854775807}"#,
    ]
    .join("\n");
    let out = setup.try_import("quiz", &lines);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for n in 1..=7 {
        assert!(stderr.contains(&format!("line {n}:")), "{stderr}");
    }
    for secret in ["secret-one", "secret-two", "secret-three", "10000-01"] {
        assert!(!stderr.contains(secret), "{secret} echoed: {stderr}");
    }
    assert!(setup.stored_users().is_empty());
}

#[tokio::test]
async fn a_malformed_token_from_the_token_endpoint_is_never_used() {
    let (lms, setup, proxy, jwt) = due_for_refresh().await;
    lms.admin("settings", json!({"token_answer": "malformed"}))
        .await;
    let r = setup.get_as(&jwt, "/canvas/api/v1/sandbox/echo").await;
    expect_error(r, 503, "lms_unavailable").await;
    assert_eq!(lms.stats().await["refresh_token"], 1);
    assert_eq!(
        lms.stats().await["api_calls"],
        0,
        "nothing reached the LMS API"
    );
    assert_eq!(setup.stored_users(), ["alice"]);
    let (_, log) = proxy.terminate();
    assert!(!log.contains("EVIL"), "the bad token was logged");
}

#[tokio::test]
async fn a_malformed_token_at_the_callback_is_not_stored() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    lms.admin("settings", json!({"token_answer": "malformed"}))
        .await;
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    let start = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = begin_consent(&start).await;
    let r = consent.complete(42).await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.contains("lms_proxy_error=invalid_token_response"),
        "{location}"
    );
    assert!(setup.stored_users().is_empty());
}

#[tokio::test]
async fn the_lms_sees_the_users_token_and_none_of_the_tools_headers() {
    let lms = SandboxLms::start();
    let (setup, _proxy, _, access) = alice_connected(&lms, "").await;
    let r = client()
        .get(setup.url(
            "/canvas/api/v1/sandbox/echo?a=1;access_token=x&ACCESS_TOKEN=y&access_token[]=z&b=2",
        ))
        .bearer_auth(API_KEY)
        .header("x-lms-user", "alice")
        .header("forwarded", "for=203.0.113.9")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "203.0.113.9")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echo = json_of(r).await;
    let headers = echo["headers"].as_object().unwrap();
    assert_eq!(headers["authorization"], format!("Bearer {access}"));
    for gone in [
        "x-lms-user",
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-real-ip",
        "proxy-authorization",
    ] {
        assert!(!headers.contains_key(gone), "{gone} reached the LMS");
    }
    assert_eq!(echo["query"], "a=1&b=2");
    assert!(!echo.to_string().contains(API_KEY));
}

// 2. Grants are deleted only when the LMS refuses their refresh token.

#[tokio::test]
async fn a_dead_token_while_the_token_endpoint_is_down_keeps_the_grant() {
    let (lms, setup, _proxy, jwt) = expired_at_the_lms().await;
    lms.admin("settings", json!({"token_endpoint": "down"}))
        .await;
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert!(r.headers().contains_key("retry-after"));
    expect_error(r, 503, "lms_unavailable").await;
    assert_eq!(setup.stored_users(), ["alice"]);
    // Back up: the grant still works, one refresh later. The back-off lets one call a second.
    lms.admin("settings", json!({"token_endpoint": "ok"})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200);
}

// 3. A failing token endpoint is not hammered.

#[tokio::test]
async fn a_failing_token_endpoint_gets_at_most_one_call_a_second() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let users: Vec<String> = (0..20).map(|i| format!("user{i}")).collect();
    let mut lines = String::new();
    for user in &users {
        let (access, refresh) = lms.grant(42, 3600, None).await;
        lines.push_str(&format!(
            "{{\"user\":\"{user}\",\"access_token\":\"{access}\",\"refresh_token\":\"{refresh}\",\"expires_at\":{}}}\n",
            now() - 10
        ));
    }
    setup.import("quiz", &lines);
    let _proxy = setup.start_proxy();
    let jwts: Vec<String> = users.iter().map(|u| setup.mint("quiz", u)).collect();
    lms.admin("settings", json!({"token_endpoint": "down"}))
        .await;
    // The first failure starts the back-off.
    let r = setup.get_as(&jwts[0], "/canvas/api/v1/users/self").await;
    expect_error(r, 503, "lms_unavailable").await;
    let before = lms.stats().await["refresh_token"].as_u64().unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        let mut wave = tokio::task::JoinSet::new();
        for jwt in &jwts {
            let request = client()
                .get(setup.url("/canvas/api/v1/users/self"))
                .bearer_auth(jwt);
            wave.spawn(async move { request.send().await.map(|r| r.status().as_u16()) });
        }
        while let Some(status) = wave.join_next().await {
            assert_eq!(status.unwrap().unwrap(), 503);
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let calls = lms.stats().await["refresh_token"].as_u64().unwrap() - before;
    let allowed = started.elapsed().as_secs() + 1;
    assert!(
        calls <= allowed,
        "{calls} token calls in {:?} of outage for 60 requests",
        started.elapsed()
    );
}

// 4. An answer after which the proxy closes the connection says so.

/// One request on an open connection; returns the response head (lower-cased) and body.
fn exchange(stream: &mut TcpStream, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("read head");
        assert!(n > 0, "connection closed before a response head");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

fn get_request(path: &str, jwt: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\n\r\n")
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// The server closed the connection: a read ends with EOF or a reset, not with data and not
/// with the read timeout (a connection still open).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[tokio::test]
async fn a_502_says_connection_close_and_closes() {
    let lms = SandboxLms::start();
    let (setup, _proxy, jwt, _) = alice_connected(&lms, "").await;
    drop(lms);
    let mut stream = connect(setup.port);
    let (head, body) = exchange(&mut stream, &get_request("/canvas/api/v1/users/self", &jwt));
    assert!(head.starts_with("http/1.1 502"), "{head}");
    assert!(body.contains("upstream_unavailable"), "{body}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed(&mut stream));
}

#[tokio::test]
async fn the_401_after_a_refused_refresh_says_connection_close() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() + 3600);
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    // The user revokes the grant at the LMS: the token dies and its refresh is refused.
    lms.admin("revoke_grant", json!({"access_token": access}))
        .await;
    let mut stream = connect(setup.port);
    let (head, body) = exchange(&mut stream, &get_request("/canvas/api/v1/users/self", &jwt));
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(body.contains("authorization_required"), "{body}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed(&mut stream));
    assert_eq!(lms.stats().await["refresh_token"], 1);
}

#[tokio::test]
async fn the_proxys_own_refusals_keep_the_connection_open() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "nobody-yet");
    let mut stream = connect(setup.port);
    for _ in 0..3 {
        let (head, body) = exchange(&mut stream, &get_request("/canvas/api/v1/users/self", &jwt));
        assert!(head.starts_with("http/1.1 401"), "{head}");
        assert!(body.contains("authorization_required"), "{body}");
        assert!(!head.contains("connection: close"), "{head}");
    }
}

// 5. A tool JWT's lifetime counts from now.

fn hs256(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_future_iat_does_not_stretch_a_jwt_and_refusals_read_alike() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let _proxy = setup.start_proxy();
    let aud = setup.url("");
    let exp = now() + 10 * 365 * 86_400;
    let stretched = hs256(
        &json!({"iss":"quiz","sub":"alice","aud":aud,"exp":exp,"iat":exp - 60}),
        TOOL_SECRET,
    );
    let r = setup.get_as(&stretched, "/canvas/api/v1/users/self").await;
    let stretched = expect_error(r, 401, "invalid_tool_credentials").await;
    let unknown = hs256(
        &json!({"iss":"no-such-tool","sub":"alice","aud":aud,"exp":now() + 60}),
        TOOL_SECRET,
    );
    let forged = hs256(
        &json!({"iss":"quiz","sub":"alice","aud":aud,"exp":now() + 60}),
        "not-the-quiz-secret-not-the-quiz-secret",
    );
    let unknown = expect_error(
        setup.get_as(&unknown, "/canvas/api/v1/users/self").await,
        401,
        "invalid_tool_credentials",
    )
    .await;
    let forged = expect_error(
        setup.get_as(&forged, "/canvas/api/v1/users/self").await,
        401,
        "invalid_tool_credentials",
    )
    .await;
    assert_eq!(
        unknown, forged,
        "an unknown iss must read like a bad signature"
    );
    assert_eq!(unknown, stretched);
}

// 6. The LMS's own login and token endpoints are not on a tool's path.

#[tokio::test]
async fn canvas_login_endpoints_are_refused_unless_named_exactly() {
    let lms = SandboxLms::start();
    let (setup, _proxy, jwt, _) = alice_connected(
        &lms,
        r#"
[[routes]]
prefix = "/wide"
platform = "canvas"
allow = ["* /**"]

[[routes]]
prefix = "/named"
platform = "canvas"
allow = ["DELETE /login/oauth2/token"]
"#,
    )
    .await;
    let c = client();
    for (method, path) in [
        ("DELETE", "/canvas/login/oauth2/token"),
        ("GET", "/canvas/login/session_token"),
        ("GET", "/canvas/courses/3"),
        ("DELETE", "/wide/login/oauth2/token"),
        ("DELETE", "/wide/%6Cogin/oauth2/token"),
        ("GET", "/wide/LOGIN/session_token"),
    ] {
        let r = c
            .request(method.parse().unwrap(), setup.url(path))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
    }
    assert_eq!(lms.stats().await["revocations"], 0);
    assert_eq!(
        setup
            .get_as(&jwt, "/canvas/api/v1/users/self")
            .await
            .status(),
        200,
        "the grant survived"
    );
    // An operator who names the exact path opens it.
    let r = c
        .delete(setup.url("/named/login/oauth2/token"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(lms.stats().await["revocations"], 1);
}

// 7. Who consented is learnt from the LMS when the token answer does not say.

async fn consent_without_user_in_answer(
    lms_user_id: u64,
    consenting: u64,
    whoami_down: bool,
) -> (Setup, String, SandboxLms, Proxy) {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let proxy = setup.start_proxy();
    lms.admin(
        "settings",
        json!({"token_answer": "no_user", "whoami_down": whoami_down}),
    )
    .await;
    let jwt = setup.mint_with_lms_user("quiz", "alice", &lms_user_id.to_string());
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    let start = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = begin_consent(&start).await;
    let r = consent.complete(consenting).await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    (setup, location, lms, proxy)
}

#[tokio::test]
async fn without_a_user_in_the_token_answer_the_lms_is_asked() {
    let (setup, location, _lms, _proxy) = consent_without_user_in_answer(42, 42, false).await;
    assert!(!location.contains("lms_proxy_error"), "{location}");
    assert_eq!(setup.stored_users(), ["alice"]);
}

#[tokio::test]
async fn without_a_user_in_the_token_answer_another_user_is_refused() {
    let (setup, location, lms, _proxy) = consent_without_user_in_answer(42, 43, false).await;
    assert!(
        location.contains("lms_proxy_error=lms_user_mismatch"),
        "{location}"
    );
    assert!(setup.stored_users().is_empty());
    assert_eq!(lms.stats().await["revocations"], 1);
}

#[tokio::test]
async fn when_the_lms_cannot_say_who_consented_nothing_is_stored() {
    let (setup, location, _lms, _proxy) = consent_without_user_in_answer(42, 42, true).await;
    assert!(
        location.contains("lms_proxy_error=lms_user_mismatch"),
        "{location}"
    );
    assert!(setup.stored_users().is_empty());
}

// 8. Smaller holes.

#[cfg(unix)]
#[tokio::test]
async fn the_store_is_private_from_the_first_run_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let access = lms.issue(42, 3600, None).await;
    let mut env = setup.env.clone();
    env.insert("UMASK_BIN".into(), BIN.into());
    let config = setup.config_path();
    let script = format!(
        "umask 000; exec \"$UMASK_BIN\" tokens import -c '{}' --platform canvas --tool quiz",
        config.display()
    );
    let out = run(
        "sh",
        &["-c".to_string(), script],
        &env,
        Some(&format!(
            "{{\"user\":\"alice\",\"access_token\":\"{access}\",\"expires_in\":3600}}\n"
        )),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A running proxy keeps the WAL and shared-memory files open.
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    assert_eq!(
        setup
            .get_as(&jwt, "/canvas/api/v1/users/self")
            .await
            .status(),
        200
    );
    let mode =
        |p: std::path::PathBuf| std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
    let db = setup.db_path();
    assert_eq!(mode(db.parent().unwrap().to_path_buf()).unwrap(), 0o700);
    assert_eq!(mode(db.clone()).unwrap(), 0o600);
    let mut seen = 0;
    for suffix in ["-wal", "-shm"] {
        let side = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if let Ok(m) = mode(side) {
            assert_eq!(m, 0o600, "{suffix}");
            seen += 1;
        }
    }
    assert!(seen > 0, "the WAL files were not there to check");
}

#[tokio::test]
async fn trace_logs_carry_no_token_secret_code_or_jwt() {
    let lms = SandboxLms::start();
    let mut setup = Setup::new(&lms.origin, "");
    setup.env.insert("RUST_LOG".into(), "trace".into());
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    // A refresh, a proxied call with the new token, an API key call and a whole consent.
    let r = setup.get_as(&jwt, "/canvas/api/v1/sandbox/echo").await;
    assert_eq!(r.status(), 200);
    let new_access = json_of(r).await["headers"]["authorization"]
        .as_str()
        .unwrap()
        .trim_start_matches("Bearer ")
        .to_string();
    let r = client()
        .get(setup.url("/canvas/api/v1/users/self"))
        .bearer_auth(API_KEY)
        .header("x-lms-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let bob = setup.mint("quiz", "bob");
    let r = setup.get_as(&bob, "/canvas/api/v1/users/self").await;
    let start = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = begin_consent(&start).await;
    let callback = consent.decide(Some(43)).await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert_eq!(consent.callback(&callback).await.status(), 302);
    let (_, log) = proxy.terminate();
    assert!(log.len() > 1000, "trace logging produced little: {log}");
    for (what, secret) in [
        ("old access token", access.as_str()),
        ("refresh token", refresh.as_str()),
        ("new access token", new_access.as_str()),
        ("tool JWT", jwt.as_str()),
        ("bob's JWT", bob.as_str()),
        ("API key", API_KEY),
        ("client secret", CLIENT_SECRET),
        ("tool secret", TOOL_SECRET),
        ("authorization code", code.as_str()),
    ] {
        assert!(!log.contains(secret), "the log holds the {what}");
    }
}

#[tokio::test]
async fn check_refuses_shared_credentials_private_keys_and_absurd_numbers() {
    let lms = SandboxLms::start();
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("private.pem"), key.serialize_pem()).unwrap();
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:1"
public_url = "http://127.0.0.1:1"
key_env = "LMS_PROXY_KEY"
threads = 5000
max_tool_token_ttl_secs = 315360000

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "{}"
client_id = "1"
client_secret_env = "CANVAS_CLIENT_SECRET"
read_timeout_ms = 86400000

[[routes]]
prefix = "/canvas"
platform = "canvas"

[[tools]]
id = "a"
secret_env = "SHARED_SECRET"
api_key_sha256 = ["{hash}"]
platforms = ["canvas"]

[[tools]]
id = "b"
secret_env = "SHARED_SECRET"
api_key_sha256 = ["{hash}"]
platforms = ["canvas"]

[[tools]]
id = "c"
public_key_file = "private.pem"
platforms = ["canvas"]
"#,
        lms.origin,
        hash = sha256_hex(API_KEY)
    );
    std::fs::write(dir.path().join("lms-proxy.toml"), config).unwrap();
    let env = std::collections::HashMap::from([
        ("LMS_PROXY_KEY".to_string(), MASTER_KEY.to_string()),
        (
            "CANVAS_CLIENT_SECRET".to_string(),
            CLIENT_SECRET.to_string(),
        ),
        ("SHARED_SECRET".to_string(), TOOL_SECRET.to_string()),
    ]);
    let out = run(
        BIN,
        &[
            "check".into(),
            "-c".into(),
            dir.path().join("lms-proxy.toml").display().to_string(),
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "server.threads: 5000 is out of range",
        "server.max_tool_token_ttl_secs: 315360000 is out of range",
        "platforms[0].read_timeout_ms: 86400000 is out of range",
        "tools[1].secret_env: SHARED_SECRET is also tools[0]'s secret",
        "tools[1].api_key_sha256: a key is also tool a's",
        "tools[2].public_key_file:",
        "holds a private key",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected:?} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains(TOOL_SECRET));
}

#[tokio::test]
async fn backslashes_and_encoded_dot_segments_never_reach_the_lms() {
    let lms = SandboxLms::start();
    let (setup, _proxy, jwt, _) = alice_connected(&lms, "").await;
    for path in [
        "/canvas/api/v1/..%2F..%2Flogin/session_token",
        "/canvas/api/v1/%2e%2e/%2e%2e/login/session_token",
        "/canvas/api/v1/x%5C..%5C..%5Clogin",
        "/canvas/api\\v1\\users\\self",
        "/canvas/api/v1/users/a%00b",
    ] {
        let answer = raw_request(
            setup.port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {jwt}\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(
            answer.contains("\"error\":\"invalid_request\""),
            "{path}: {answer}"
        );
    }
    assert_eq!(lms.stats().await["api_calls"], 0);
    // An encoded slash inside a segment (Canvas SIS ids) is not the proxy's to refuse (the
    // sandbox itself knows numeric course ids only).
    let r = setup
        .get_as(&jwt, "/canvas/api/v1/courses/sis_course_id:A%2FB")
        .await;
    assert!(!r.text().await.unwrap().contains("invalid_request"));
}

#[tokio::test]
async fn a_consent_url_reveals_nothing_about_the_user() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let _proxy = setup.start_proxy();
    let jwt = setup.mint_with_lms_user("quiz", "alice-user-key", "4242");
    let r = setup
        .get_as(
            &jwt,
            "/api/oauth/status/canvas?return_to=https://quiz.example.edu/after",
        )
        .await;
    assert_eq!(r.status(), 200);
    let url = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_string();
    let ticket = url::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    use base64::Engine;
    // Whatever its parts, none of them decodes to anything readable.
    let mut readable = ticket.clone();
    for part in ticket.split('.') {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_default();
        readable.push_str(&String::from_utf8_lossy(&bytes));
    }
    for secret in ["alice-user-key", "4242", "quiz", "quiz.example.edu"] {
        assert!(!readable.contains(secret), "the ticket shows {secret}");
    }
    // And it still works.
    let consent = begin_consent(&url).await;
    assert_eq!(consent.complete(42).await.status(), 302);
}

// 11. Stopping never floods the disk.

#[tokio::test]
async fn sigint_under_connection_load_stops_cleanly_every_time() {
    let lms = SandboxLms::start();
    for round in 0..12 {
        let setup = Setup::new(&lms.origin, "");
        let proxy = setup.start_proxy();
        let port = setup.port;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hammers: Vec<_> = (0..4)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed)
                        && Instant::now() < deadline
                    {
                        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (status, log) = proxy.interrupt();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in hammers {
            h.join().unwrap();
        }
        assert!(
            status.is_some(),
            "round {round}: SIGINT did not stop the proxy"
        );
        assert!(
            !log.contains("Accept() failed"),
            "round {round}: the accept loop failed at shutdown"
        );
        assert!(
            log.len() < 1_000_000,
            "round {round}: {} bytes of log",
            log.len()
        );
    }
}

// 8. A request head dripped in is cut off.

#[tokio::test]
async fn a_drip_fed_request_head_is_cut_off() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    setup.edit_config(|text| {
        text.replace("threads = 2\n", "threads = 2\nheader_timeout_ms = 1000\n")
    });
    let _proxy = setup.start_proxy();
    // A head that arrives whole, however slowly its connection was opened, is answered.
    let mut stream = connect(setup.port);
    std::thread::sleep(Duration::from_millis(1500));
    let (head, _) = exchange(&mut stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // The next one, on the same connection, dripped a line every 300 ms, is not.
    let mut stream_closed = false;
    stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        if stream
            .write_all(format!("X-Drip-{i}: 1\r\n").as_bytes())
            .is_err()
        {
            stream_closed = true;
            break;
        }
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut rest = Vec::new();
    let ended = match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(
        stream_closed || ended,
        "a 6-second head was still being read"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

// 10. Only URLs under base_url's path are rewritten.

#[tokio::test]
async fn links_and_locations_outside_the_base_path_are_left_alone() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&format!("{}/lms", lms.origin), "");
    let access = lms.issue(42, 3600, None).await;
    setup.import_grant("alice", &access, "r", now() + 3600);
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    let asked = |pairs: &[(&str, &str)]| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("/canvas/api/v1/sandbox/headers?{query}")
    };
    let path = asked(&[
        ("link", "<{origin}/lmsx/a>; rel=\"next\""),
        ("link", "<{origin}/lms/api/v1/b?page=2>; rel=\"prev\""),
        ("location", "{origin}/other/a"),
    ]);
    let r = setup.get_as(&jwt, &path).await;
    assert_eq!(r.status(), 200);
    let links: Vec<String> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let links = links.join(",");
    assert!(
        links.contains(&format!("<{}/lmsx/a>; rel=\"next\"", lms.origin)),
        "{links}"
    );
    assert!(
        links.contains(&format!(
            "<{}>; rel=\"prev\"",
            setup.url("/canvas/api/v1/b?page=2")
        )),
        "{links}"
    );
    assert_eq!(
        r.headers()["location"],
        format!("{}/other/a", lms.origin).as_str()
    );
    let r = setup
        .get_as(&jwt, &asked(&[("location", "{origin}/lms/api/v1/c")]))
        .await;
    assert_eq!(
        r.headers()["location"],
        setup.url("/canvas/api/v1/c").as_str()
    );
}
