//! The real binary proxying to the sandbox LMS: token injection, stripping, rewriting,
//! pass-through of LMS answers, and every error in the contract's table.

mod common;

use common::*;
use serde_json::{json, Value};

/// A sandbox, a proxy, and user `alice` of tool `quiz` connected as LMS user 42.
struct World {
    lms: SandboxLms,
    setup: Setup,
    proxy: Proxy,
    access: String,
    jwt: String,
}

async fn world(extra: &str) -> World {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, extra);
    let access = lms.issue(42, 3600, None).await;
    setup.import(
        "quiz",
        &format!("{{\"user\":\"alice\",\"access_token\":\"{access}\",\"expires_in\":3600,\"lms_user_id\":42}}\n"),
    );
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    World {
        lms,
        setup,
        proxy,
        access,
        jwt,
    }
}

impl World {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.setup.get_as(&self.jwt, path).await
    }
}

#[tokio::test]
async fn injects_the_users_token_and_strips_the_tools_credentials() {
    let w = world("").await;
    let r = w.get("/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["id"], 42);

    let r = client()
        .post(
            w.setup
                .url("/canvas/api/v1/sandbox/echo?keep=1&access_token=tool-secret&b=2"),
        )
        .bearer_auth(&w.jwt)
        .header("authorization", "Bearer a-second-tool-credential")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("cookie", "session=browser-cookie")
        .header("x-lms-user", "mallory")
        .header("x-custom", "passes")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = json_of(r).await;
    assert_eq!(seen["path"], "/api/v1/sandbox/echo");
    assert_eq!(seen["query"], "keep=1&b=2");
    assert_eq!(
        seen["headers"]["authorization"],
        format!("Bearer {}", w.access)
    );
    assert_eq!(
        seen["headers"]["host"],
        w.lms.origin.trim_start_matches("http://")
    );
    assert_eq!(seen["headers"]["x-custom"], "passes");
    assert!(seen["headers"].get("cookie").is_none());
    assert!(seen["headers"].get("x-lms-user").is_none());
    assert!(seen["headers"].get("proxy-authorization").is_none());
    assert_eq!(seen["body"], "payload");
}

#[tokio::test]
async fn post_bodies_reach_the_lms_and_come_back_unchanged() {
    let w = world("").await;
    let body = "{\"title\":\"Week 1\",\"message\":\"".to_string() + &"x".repeat(200_000) + "\"}";
    let r = client()
        .post(w.setup.url("/canvas/api/v1/courses/3/discussion_topics"))
        .bearer_auth(&w.jwt)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.unwrap(), body);
}

#[tokio::test]
async fn pagination_links_point_back_at_the_proxy_and_work() {
    let w = world("").await;
    let r = w.get("/canvas/api/v1/courses?per_page=10").await;
    assert_eq!(r.status(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let base = w.setup.url("/canvas");
    for rel in ["current", "next", "first", "last"] {
        assert!(link.contains(&format!("rel=\"{rel}\"")), "{link}");
    }
    assert!(!link.contains(&w.lms.origin), "LMS origin left in {link}");
    let next = link
        .split(',')
        .find(|part| part.contains("rel=\"next\""))
        .and_then(|part| part.split('<').nth(1))
        .and_then(|part| part.split('>').next())
        .unwrap()
        .to_string();
    assert_eq!(next, format!("{base}/api/v1/courses?page=2&per_page=10"));
    // Follow it as canvasapi would: exactly as given.
    let page2 = client()
        .get(&next)
        .bearer_auth(&w.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(page2.status(), 200);
    let courses: Value = json_of(page2).await;
    assert_eq!(courses[0]["id"], 11);
}

#[tokio::test]
async fn location_is_rewritten_only_for_the_lms_origin() {
    // A route that opens one of the LMS's web pages (routes default to its API).
    let w = world(
        "[[routes]]\nprefix = \"/web\"\nplatform = \"canvas\"\nallow = [\"GET /courses/*\"]\n",
    )
    .await;
    let r = w.get("/web/courses/3").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        w.setup.url("/web/api/v1/courses/3").as_str()
    );
    let r = w.get("/canvas/api/v1/files/9/download").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://files.sandbox-cdn.test/files/9?sig=abc123"
    );
}

#[tokio::test]
async fn lms_answers_pass_through_untouched() {
    let w = world("").await;
    // No permission: 401 without WWW-Authenticate is the LMS's answer, not ours.
    let r = w.get("/canvas/api/v1/accounts/1").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none());
    assert_eq!(
        json_of(r).await["errors"][0]["message"],
        "user not authorized to perform that action"
    );

    // Throttled: Canvas's text/plain 403 is not an auth failure.
    w.lms.fill_bucket(&w.access, 700.0).await;
    let r = w.get("/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 403);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        r.text().await.unwrap(),
        "403 Forbidden (Rate Limit Exceeded)\n"
    );
}

#[tokio::test]
async fn insufficient_scope_passes_through() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let access = lms
        .issue(42, 3600, Some(vec!["url:GET|/api/v1/courses"]))
        .await;
    setup.import(
        "quiz",
        &format!("{{\"user\":\"alice\",\"access_token\":\"{access}\"}}\n"),
    );
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    let r = setup.get_as(&jwt, "/canvas/api/v1/courses").await;
    assert_eq!(r.status(), 200);
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_none());
    assert_eq!(
        json_of(r).await["errors"][0]["message"],
        "Insufficient scopes on access token."
    );
}

async fn expect_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status(), status, "expected {status} {code}");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    if status == 401 {
        assert_eq!(
            r.headers()["www-authenticate"],
            format!("Bearer realm=\"lms-proxy\", error=\"{code}\"").as_str()
        );
    }
    let body = json_of(r).await;
    assert_eq!(body["error"], code, "{body}");
    assert!(body["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body
}

#[tokio::test]
async fn the_error_table() {
    let w = world("").await;
    let c = client();
    let url = |p: &str| w.setup.url(p);

    expect_error(w.get("/nothing/here").await, 404, "unknown_route").await;
    expect_error(w.get("/canvasx/api").await, 404, "unknown_route").await;
    // Route before credentials: an unknown path is 404 even without a credential.
    expect_error(
        c.get(url("/nothing")).send().await.unwrap(),
        404,
        "unknown_route",
    )
    .await;

    expect_error(
        c.get(url("/canvas/api/v1/users/self"))
            .send()
            .await
            .unwrap(),
        401,
        "invalid_tool_credentials",
    )
    .await;
    expect_error(
        w.setup
            .get_as("not.a.jwt", "/canvas/api/v1/users/self")
            .await,
        401,
        "invalid_tool_credentials",
    )
    .await;
    let mut forged = w.jwt.clone();
    forged.pop();
    forged.push(if w.jwt.ends_with('A') { 'B' } else { 'A' });
    expect_error(
        w.setup.get_as(&forged, "/canvas/api/v1/users/self").await,
        401,
        "invalid_tool_credentials",
    )
    .await;
    let huge = "a".repeat(10_000);
    expect_error(
        w.setup.get_as(&huge, "/canvas/api/v1/users/self").await,
        401,
        "invalid_tool_credentials",
    )
    .await;

    // The `nowhere` tool exists but may not use canvas.
    let nowhere = w.setup.mint("nowhere", "alice");
    expect_error(
        w.setup.get_as(&nowhere, "/canvas/api/v1/users/self").await,
        403,
        "forbidden",
    )
    .await;
    // Allowlist: /limited allows GET users/self and one POST only.
    let r = c
        .get(url("/limited/api/v1/users/self"))
        .bearer_auth(&w.jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    expect_error(w.get("/limited/api/v1/courses").await, 403, "forbidden").await;
    expect_error(
        c.delete(url("/limited/api/v1/users/self"))
            .bearer_auth(&w.jwt)
            .send()
            .await
            .unwrap(),
        403,
        "forbidden",
    )
    .await;
    let big = raw_request(w.setup.port, &format!("GET /canvas/api/v1/users/self HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nCookie: {}\r\nConnection: close\r\n\r\n", w.jwt, "c".repeat(100_000)));
    assert!(big.starts_with("HTTP/1.1 431"), "{big}");
    assert!(
        big.contains("\"error\":\"request_headers_too_large\""),
        "{big}"
    );

    // HTTP clients normalise dot segments away, so these go over a raw socket.
    for path in [
        "/limited/api/v1/users/../courses",
        "/canvas/api/v1/%2e%2e/login",
    ] {
        let head = raw_request(w.setup.port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n", w.jwt));
        assert!(head.starts_with("HTTP/1.1 400"), "{path}: {head}");
        assert!(head.contains("\"error\":\"invalid_request\""), "{head}");
    }

    // A user without a token: 401 with a consent URL; a browser is redirected to it.
    let bob = w.setup.mint("quiz", "bob");
    let body = expect_error(
        w.setup.get_as(&bob, "/canvas/api/v1/users/self").await,
        401,
        "authorization_required",
    )
    .await;
    assert_eq!(body["platform"], "canvas");
    let start = body["authorize_url"].as_str().unwrap();
    assert!(
        start.starts_with(&url("/oauth/start/canvas?ticket=")),
        "{start}"
    );
    let r = c
        .get(url("/canvas/api/v1/users/self"))
        .bearer_auth(&bob)
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&url("/oauth/start/canvas?ticket=")));
    let r = c
        .get(url("/canvas/api/v1/users/self"))
        .bearer_auth(&bob)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn jwts_with_wrong_audience_or_unknown_tool_are_refused() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let w = world("").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |claims: Value, secret: &str| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let cases = [
        sign(
            serde_json::json!({"iss":"quiz","sub":"alice","aud":"https://elsewhere.example","exp":now+60}),
            TOOL_SECRET,
        ),
        sign(
            serde_json::json!({"iss":"ghost","sub":"alice","aud":w.setup.url(""),"exp":now+60}),
            TOOL_SECRET,
        ),
        sign(
            serde_json::json!({"iss":"quiz","sub":"alice","aud":w.setup.url(""),"exp":now-120}),
            TOOL_SECRET,
        ),
        // The other tool's secret cannot speak for quiz.
        sign(
            serde_json::json!({"iss":"quiz","sub":"alice","aud":w.setup.url(""),"exp":now+60}),
            OTHER_SECRET,
        ),
    ];
    for jwt in cases {
        let r = w.setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
        expect_error(r, 401, "invalid_tool_credentials").await;
    }
}

#[tokio::test]
async fn api_keys_act_for_the_user_named_in_x_lms_user() {
    let w = world("").await;
    let c = client();
    let r = c
        .get(w.setup.url("/canvas/api/v1/users/self"))
        .bearer_auth(API_KEY)
        .header("x-lms-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["id"], 42);
    let r = c
        .get(w.setup.url("/canvas/api/v1/users/self"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "invalid_tool_credentials").await;
    let r = c
        .get(w.setup.url("/canvas/api/v1/users/self"))
        .bearer_auth("wrong-key")
        .header("x-lms-user", "alice")
        .send()
        .await
        .unwrap();
    expect_error(r, 401, "invalid_tool_credentials").await;
}

#[tokio::test]
async fn one_tool_never_uses_another_tools_grant() {
    let w = world("").await;
    // `other` names the same user key as quiz's alice, but alice never consented to it.
    let other = w.setup.mint("other", "alice");
    let r = w.setup.get_as(&other, "/canvas/api/v1/users/self").await;
    expect_error(r, 401, "authorization_required").await;
}

#[tokio::test]
async fn unreachable_and_slow_lms() {
    let w = world("").await;
    let r = w.get("/canvas/api/v1/sandbox/slow?ms=5000").await;
    expect_error(r, 504, "upstream_timeout").await;

    // Stop the LMS: the next request cannot connect.
    let World {
        lms,
        setup,
        proxy: _proxy,
        jwt,
        ..
    } = w;
    drop(lms);
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    expect_error(r, 502, "upstream_unavailable").await;
}

#[tokio::test]
async fn health_readiness_and_a_restart_keeps_users_connected() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let access = lms.issue(42, 3600, None).await;
    setup.import(
        "quiz",
        &format!("{{\"user\":\"alice\",\"access_token\":\"{access}\"}}\n"),
    );
    let jwt = setup.mint("quiz", "alice");
    {
        let _proxy = setup.start_proxy();
        let r = client().get(setup.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 200);
    }
    let _proxy = setup.start_proxy();
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn one_json_log_line_per_request_and_no_secret_in_the_log() {
    let w = world("").await;
    let _ = w
        .get("/canvas/api/v1/users/self?access_token=query-secret")
        .await;
    let _ = client()
        .get(w.setup.url("/canvas/api/v1/users/self"))
        .bearer_auth(API_KEY)
        .header("x-lms-user", "alice")
        .send()
        .await
        .unwrap();
    let bob = w.setup.mint("quiz", "bob");
    let _ = w.setup.get_as(&bob, "/canvas/api/v1/courses").await;
    let access = |log: &str| -> Vec<Value> {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "lms_proxy::access" && v["path"] != "/healthz")
            .collect()
    };
    let log = w.proxy.log_when(|log| access(log).len() >= 3).await;
    let access_lines = access(&log);
    assert_eq!(access_lines.len(), 3, "{log}");
    let first = &access_lines[0];
    assert_eq!(first["route"], "/canvas");
    assert_eq!(first["platform"], "canvas");
    assert_eq!(first["tool"], "quiz");
    assert_eq!(first["user"], "alice");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/canvas/api/v1/users/self");
    assert_eq!(first["status"], 200);
    assert!(first["upstream_ms"].is_u64());
    assert!(first["cache"] == "hit" || first["cache"] == "miss");
    assert_eq!(access_lines[2]["error"], "authorization_required");
    for secret in [
        w.access.as_str(),
        w.jwt.as_str(),
        bob.as_str(),
        API_KEY,
        TOOL_SECRET,
        CLIENT_SECRET,
        MASTER_KEY,
        "query-secret",
        "ticket=",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn sigterm_ends_the_process_cleanly_with_the_last_access_line_written() {
    let w = world("").await;
    let r = w.get("/canvas/api/v1/courses").await;
    assert_eq!(r.status(), 200);
    let (status, log) = w.proxy.terminate();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    assert!(
        log.lines().any(|l| l.contains("\"lms_proxy::access\"")
            && l.contains("\"path\":\"/canvas/api/v1/courses\"")),
        "{log}"
    );
    // Pingora's very last line, logged just before the process ends, is there too.
    assert!(log.contains("All runtimes exited"), "{log}");
}

#[tokio::test]
async fn prometheus_metrics_count_requests_and_refreshes() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let metrics_port = free_port();
    let config = std::fs::read_to_string(setup.config_path()).unwrap();
    std::fs::write(
        setup.config_path(),
        config.replacen(
            "threads = 2",
            &format!("threads = 2\nmetrics_listen = \"127.0.0.1:{metrics_port}\""),
            1,
        ),
    )
    .unwrap();
    let access = lms.issue(42, 3600, None).await;
    setup.import(
        "quiz",
        &format!("{{\"user\":\"alice\",\"access_token\":\"{access}\"}}\n"),
    );
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    for _ in 0..3 {
        let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 200);
    }
    let _ = client().get(setup.url("/nowhere")).send().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let text = client()
        .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("lms_proxy_requests_total{platform=\"canvas\",status=\"2xx\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("lms_proxy_requests_total{platform=\"none\",status=\"4xx\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lms_proxy_token_cache_total{result=\"hit\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("lms_proxy_token_cache_total{result=\"miss\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("lms_proxy_token_refreshes_total{outcome=\"refreshed\"} 0"),
        "{text}"
    );
}

#[tokio::test]
async fn tools_may_sign_with_es256_or_eddsa_keys() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let lms = SandboxLms::start();
    let setup = Setup::new(
        &lms.origin,
        r#"
[[tools]]
id = "es"
public_key_file = "es.pem"
platforms = ["canvas"]

[[tools]]
id = "ed"
public_key_file = "ed.pem"
platforms = ["canvas"]
"#,
    );
    let es = rcgen::KeyPair::generate().unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    std::fs::write(setup.dir.path().join("es.pem"), es.public_key_pem()).unwrap();
    std::fs::write(setup.dir.path().join("ed.pem"), ed.public_key_pem()).unwrap();
    let access = lms.issue(44, 3600, None).await;
    for tool in ["es", "ed"] {
        setup.import(
            tool,
            &format!("{{\"user\":\"u\",\"access_token\":\"{access}\"}}\n"),
        );
    }
    let _proxy = setup.start_proxy();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = |iss: &str| serde_json::json!({"iss": iss, "sub": "u", "aud": setup.url(""), "exp": now + 300});
    let es_jwt = encode(
        &Header::new(Algorithm::ES256),
        &claims("es"),
        &EncodingKey::from_ec_pem(es.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let ed_jwt = encode(
        &Header::new(Algorithm::EdDSA),
        &claims("ed"),
        &EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    for jwt in [&es_jwt, &ed_jwt] {
        let r = setup.get_as(jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 200);
        assert_eq!(json_of(r).await["id"], 44);
    }
    // Algorithm confusion: HS256 "signed" with the public key is refused.
    let confused = encode(
        &Header::default(),
        &claims("es"),
        &EncodingKey::from_secret(es.public_key_pem().as_bytes()),
    )
    .unwrap();
    let r = setup.get_as(&confused, "/canvas/api/v1/users/self").await;
    expect_error(r, 401, "invalid_tool_credentials").await;
    // mint signs HS256 only, and says so.
    let out = setup.cli(
        &["mint", "-c", "{config}", "--tool", "es", "--user", "u"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no secret_env"));
}

/// The proxy's TCP connections to `port`, each with the timer Linux shows for it in
/// /proc/net/tcp (`tr`: 0 none, 1 retransmit, 2 keep-alive).
#[cfg(target_os = "linux")]
fn proxy_connections_to(proxy: &Proxy, port: u16) -> Vec<u8> {
    let fds = std::fs::read_dir(format!("/proc/{}/fd", proxy.pid())).expect("proxy's fds");
    let inodes: Vec<String> = fds
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let cols: Vec<&str> = row.split_whitespace().collect();
            let remote_port = u16::from_str_radix(cols.get(2)?.rsplit(':').next()?, 16).ok()?;
            let timer = u8::from_str_radix(cols.get(5)?.split(':').next()?, 16).ok()?;
            let inode = cols.get(9)?;
            (remote_port == port && inodes.iter().any(|i| i == inode)).then_some(timer)
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn pooled_lms_connections_carry_tcp_keepalive() {
    let w = world("").await;
    assert_eq!(w.get("/canvas/api/v1/users/self").await.status(), 200);
    let lms_port: u16 = w.lms.origin.rsplit(':').next().unwrap().parse().unwrap();
    // A silently dropped pooled connection is found by keep-alive probes, not a timer per
    // request; the socket shows its keep-alive timer once the answer is acknowledged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let timers = loop {
        let timers = proxy_connections_to(&w.proxy, lms_port);
        if (!timers.is_empty() && timers.iter().all(|&t| t == 2))
            || std::time::Instant::now() > deadline
        {
            break timers;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(!timers.is_empty(), "no pooled connection to the LMS");
    assert!(timers.iter().all(|&t| t == 2), "timers {timers:?}");
}

/// A client that reaches the proxy under any of `hosts`, as DNS would send them there.
fn client_for_hosts(port: u16, hosts: &[&str]) -> reqwest::Client {
    init_tls();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(15));
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder.build().unwrap()
}

const HOST_ROUTES: &str = r#"
[[routes]]
host = "canvas.proxy.test"
platform = "canvas"

[[routes]]
host = "Other.Proxy.Test"
prefix = "/lms"
platform = "canvas"
"#;

#[tokio::test]
async fn host_routes_serve_bare_origins_and_rewrite_links_to_them() {
    let w = world(HOST_ROUTES).await;
    let port = w.setup.port;
    let c = client_for_hosts(port, &["canvas.proxy.test", "other.proxy.test"]);
    let canvas = format!("http://canvas.proxy.test:{port}");
    let other = format!("http://other.proxy.test:{port}");

    let get = |url: String| c.get(url).bearer_auth(&w.jwt).send();
    // A Canvas client that writes `/api/v1/...` against a bare origin.
    let r = get(format!("{canvas}/api/v1/courses?per_page=2"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains(&format!(
            "<{canvas}/api/v1/courses?page=2&per_page=2>; rel=\"next\""
        )),
        "{link}"
    );
    let r = get(format!("{other}/lms/api/v1/courses?per_page=2"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains(&format!("<{other}/lms/api/v1/courses?page=2")),
        "{link}"
    );
    // A host route matches only under its prefix; prefix routes stay for every other host.
    let r = get(format!("{other}/api/v1/users/self")).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(w.get("/canvas/api/v1/users/self").await.status(), 200);
}

#[tokio::test]
async fn a_jwt_for_a_host_routes_origin_works_there_only() {
    let w = world(HOST_ROUTES).await;
    let port = w.setup.port;
    let c = client_for_hosts(port, &["canvas.proxy.test", "other.proxy.test"]);
    let canvas = format!("http://canvas.proxy.test:{port}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "quiz", "sub": "alice", "aud": canvas, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(TOOL_SECRET.as_bytes()),
    )
    .unwrap();
    let get = |url: String| c.get(url).bearer_auth(&jwt).send();
    assert_eq!(
        get(format!("{canvas}/api/v1/users/self"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        get(format!(
            "http://other.proxy.test:{port}/lms/api/v1/users/self"
        ))
        .await
        .unwrap()
        .status(),
        401
    );
    assert_eq!(
        get(w.setup.url("/canvas/api/v1/users/self"))
            .await
            .unwrap()
            .status(),
        401
    );
    // The proxy's own endpoints answer on the route's host too.
    let r = get(format!("{canvas}/api/oauth/status/canvas"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Consent stays on public_url: a start reached on the route's host moves there first.
    let r = c
        .get(format!("{canvas}/oauth/start/canvas?ticket=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        w.setup.url("/oauth/start/canvas?ticket=x").as_str()
    );
}
