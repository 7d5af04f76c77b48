//! Several `lms-proxy` instances on one PostgreSQL database acting as one: the real binaries,
//! the sandbox LMS and a real PostgreSQL server (`./dev test` provides one).

mod common;

use std::time::{Duration, Instant};

use common::postgres::{Relay, TestDb};
use common::*;
use serde_json::json;

/// These tests start three proxies each; one at a time keeps a two-core machine honest.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Cluster {
    lms: SandboxLms,
    setups: Vec<Setup>,
    proxies: Vec<Option<Proxy>>,
    /// The `public_url` all instances share, as behind one load balancer.
    public_url: String,
}

impl Cluster {
    /// `n` instances on the database at `db_url`, against a new sandbox LMS.
    fn start(n: usize, db_url: &str) -> Self {
        Self::start_with(n, db_url, "", "", |_| {})
    }

    /// Like `start`, with `platform_extra` and `extra` TOML as `Setup::with_platform` takes
    /// them, and `prepare` run on each instance's folder before it starts.
    fn start_with(
        n: usize,
        db_url: &str,
        platform_extra: &str,
        extra: &str,
        prepare: impl Fn(&Setup),
    ) -> Self {
        let lms = SandboxLms::start();
        let mut setups: Vec<Setup> = (0..n)
            .map(|_| Setup::with_platform(&lms.origin, platform_extra, extra))
            .collect();
        let public_url = setups[0].url("");
        for setup in &mut setups {
            setup.on_postgres(db_url, &public_url);
            prepare(setup);
        }
        let proxies = setups.iter().map(|s| Some(s.start_proxy())).collect();
        Self {
            lms,
            setups,
            proxies,
            public_url,
        }
    }

    /// A tool JWT for `user`, good on every instance.
    fn jwt(&self, user: &str) -> String {
        let now = now();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"iss": "quiz", "sub": user, "aud": self.public_url, "iat": now, "exp": now + 600}),
            &jsonwebtoken::EncodingKey::from_secret(TOOL_SECRET.as_bytes()),
        )
        .expect("jwt")
    }

    /// Imports `users` grants from the sandbox (LMS user 42), each expiring at `expires_at`.
    async fn import_users(&self, users: usize, expires_at: i64) -> Vec<String> {
        let mut lines = String::new();
        let mut names = Vec::new();
        for i in 0..users {
            let (access, refresh) = self.lms.grant(42, 3600, None).await;
            let user = format!("user-{i:04}");
            lines.push_str(&format!(
                "{{\"user\":\"{user}\",\"access_token\":\"{access}\",\"refresh_token\":\"{refresh}\",\"expires_at\":{expires_at},\"lms_user_id\":42}}\n"
            ));
            names.push(user);
        }
        self.setups[0].import("quiz", &lines);
        names
    }

    /// `count` requests for `path` with `credential`, all at once, round-robin over the
    /// instances; the statuses seen, by count.
    async fn burst(
        &self,
        path: &str,
        credential: &str,
        count: usize,
    ) -> std::collections::BTreeMap<u16, usize> {
        let http = client();
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let url = self.setups[i % self.setups.len()].url(path);
                let (http, credential) = (http.clone(), credential.to_string());
                tokio::spawn(async move {
                    http.get(url)
                        .bearer_auth(credential)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                })
            })
            .collect();
        let mut statuses = std::collections::BTreeMap::new();
        for task in tasks {
            let status = task.await.expect("task").unwrap_or(0);
            *statuses.entry(status).or_insert(0) += 1;
        }
        statuses
    }

    /// `per_user` requests for each user, all at once, spread round-robin over the running
    /// instances; the statuses seen, by count.
    async fn round(
        &self,
        users: &[String],
        per_user: usize,
    ) -> std::collections::BTreeMap<u16, usize> {
        let running: Vec<&Setup> = self
            .setups
            .iter()
            .zip(&self.proxies)
            .filter(|(_, p)| p.is_some())
            .map(|(s, _)| s)
            .collect();
        let http = client();
        let mut tasks = Vec::new();
        for (i, user) in users.iter().enumerate() {
            let jwt = self.jwt(user);
            for j in 0..per_user {
                let url = running[(i + j) % running.len()].url("/canvas/api/v1/users/self");
                let (http, jwt) = (http.clone(), jwt.clone());
                tasks.push(tokio::spawn(async move {
                    http.get(url)
                        .bearer_auth(jwt)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                }));
            }
        }
        let mut statuses = std::collections::BTreeMap::new();
        for task in tasks {
            let status = task.await.expect("task").unwrap_or(0);
            *statuses.entry(status).or_insert(0) += 1;
        }
        statuses
    }
}

fn all_ok(statuses: &std::collections::BTreeMap<u16, usize>, expected: usize) -> bool {
    statuses.len() == 1 && statuses.get(&200) == Some(&expected)
}

/// Marks every stored grant expired as far as the proxy knows (the LMS still honours the
/// tokens). The change reaches every instance's cache through the database's notifications.
async fn make_all_due(db: &TestDb) {
    let mut conn = db.connect().await;
    sqlx::query("UPDATE lms_proxy_grants SET expires_at = $1")
        .bind(now() - 1)
        .execute(&mut conn)
        .await
        .expect("update");
}

async fn refreshes_seen(lms: &SandboxLms) -> (u64, u64) {
    let stats = lms.stats().await;
    (
        stats["refresh_token"].as_u64().unwrap_or(u64::MAX),
        stats["refresh_refused"].as_u64().unwrap_or(u64::MAX),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotating_refresh_tokens_are_refreshed_once_per_expiry_across_three_instances() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let cluster = Cluster::start(3, &db.url);
    // Brightspace's rule: every refresh returns a new refresh token and the old one is dead.
    cluster
        .lms
        .admin("settings", json!({"rotate_refresh": true}))
        .await;
    let users = cluster.import_users(100, now() - 1).await;

    let statuses = cluster.round(&users, 4).await;
    assert!(all_ok(&statuses, 400), "first expiry: {statuses:?}");
    assert_eq!(refreshes_seen(&cluster.lms).await, (100, 0));

    // The second expiry: another round, each grant once more, never with a used token.
    make_all_due(&db).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let statuses = cluster.round(&users, 4).await;
    assert!(all_ok(&statuses, 400), "second expiry: {statuses:?}");
    assert_eq!(refreshes_seen(&cluster.lms).await, (200, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn canvas_refreshes_do_not_ping_pong_between_instances() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    // Canvas keeps the refresh token but kills the previous access token at once: a second
    // refresh by another instance would kill the first instance's new token, and so on.
    let cluster = Cluster::start(3, &db.url);
    let users = cluster.import_users(100, now() - 1).await;
    let statuses = cluster.round(&users, 6).await;
    assert!(all_ok(&statuses, 600), "{statuses:?}");
    assert_eq!(refreshes_seen(&cluster.lms).await, (100, 0));
    // Afterwards every instance serves every user with the token of that one refresh.
    let statuses = cluster.round(&users, 3).await;
    assert!(all_ok(&statuses, 300), "{statuses:?}");
    assert_eq!(refreshes_seen(&cluster.lms).await, (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consent_revocation_and_new_instances_are_shared() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let mut cluster = Cluster::start(2, &db.url);
    let jwt = cluster.jwt("ada");
    let (a, b) = (&cluster.setups[0], &cluster.setups[1]);

    // Consent started on A ...
    let r = a.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 401);
    let start = json_of(r).await["authorize_url"]
        .as_str()
        .expect("authorize_url")
        .to_string();
    let consent = begin_consent(&start).await;
    // ... comes back through the load balancer to B.
    let callback = consent.decide(Some(42)).await;
    let callback = callback.replace(&a.url(""), &b.url(""));
    assert!(
        callback.starts_with(&b.url("/oauth/callback/")),
        "{callback}"
    );
    let done = consent.callback(&callback).await;
    assert!(
        done.status().is_success() || done.status().is_redirection(),
        "callback on B: {}",
        done.status()
    );
    // Both serve Ada; the same answer replayed on A is refused (single-use state).
    for setup in [a, b] {
        let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 200);
    }
    let replay = consent
        .callback(&callback.replace(&b.url(""), &a.url("")))
        .await;
    assert_eq!(replay.status(), 400);

    // A new instance serves her at once.
    let mut late = Setup::new(&cluster.lms.origin, "");
    late.on_postgres(&db.url, &cluster.public_url);
    let late_proxy = late.start_proxy();
    let r = late.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200);

    // Revoked on B: A and the new instance, which both cached her grant, stop using it.
    let revoked = client()
        .delete(b.url("/api/oauth/token/canvas"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 204);
    for setup in [a, &late] {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
            if r.status() == 401 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the revocation did not reach {}",
                setup.url("")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(late_proxy);
    cluster.proxies.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_mid_refresh_loses_no_grant() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let mut cluster = Cluster::start(2, &db.url);
    let users = cluster.import_users(1, now() - 1).await;
    let jwt = cluster.jwt(&users[0]);
    // The LMS takes its time answering the refresh: A is killed while it waits.
    cluster
        .lms
        .admin("settings", json!({"token_delay_ms": 1500}))
        .await;
    let a_url = cluster.setups[0].url("/canvas/api/v1/users/self");
    let pending = tokio::spawn({
        let jwt = jwt.clone();
        async move { client().get(a_url).bearer_auth(jwt).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while refreshes_seen(&cluster.lms).await.0 == 0 {
        assert!(Instant::now() < deadline, "A never started its refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = cluster.proxies[0].take().expect("A");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = pending.await;

    // B carries on: the lock A held went with its connection, the grant is still there.
    cluster
        .lms
        .admin("settings", json!({"token_delay_ms": 0}))
        .await;
    let r = cluster.setups[1]
        .get_as(&jwt, "/canvas/api/v1/users/self")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(cluster.setups[1].stored_users(), users);
    assert_eq!(refreshes_seen(&cluster.lms).await.1, 0);
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_the_database_is_down_cached_users_keep_working_and_it_recovers() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let relay = Relay::start(db.server_addr()).await;
    let cluster = Cluster::start(1, &db.url_via(relay.port));
    let setup = &cluster.setups[0];
    let users = cluster.import_users(2, now() + 3600).await;
    let (cached, uncached) = (&users[0], &users[1]);
    // A third user's token is due for a refresh at `valid_until - 4` and valid until then.
    let (access, refresh) = cluster.lms.grant(42, 3600, None).await;
    let valid_until = now() + 8;
    setup.import_grant("due", &access, &refresh, valid_until);
    let due = &"due".to_string();
    for user in [cached, due] {
        let r = setup
            .get_as(cluster.jwt(user), "/canvas/api/v1/users/self")
            .await;
        assert_eq!(r.status(), 200);
    }

    relay.cut();
    // Cached: still served. Not cached: 503 store_unavailable with Retry-After.
    let r = setup
        .get_as(cluster.jwt(cached), "/canvas/api/v1/users/self")
        .await;
    assert_eq!(r.status(), 200);
    // Due but still valid: the refresh needs the store, so it waits; the token serves.
    while now() < valid_until - 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = setup
        .get_as(cluster.jwt(due), "/canvas/api/v1/users/self")
        .await;
    assert_eq!(
        r.status(),
        200,
        "a due, still valid token while the store is away"
    );
    let r = setup
        .get_as(cluster.jwt(uncached), "/canvas/api/v1/users/self")
        .await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json_of(r).await["error"], "store_unavailable");
    let ready = client()
        .get(setup.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    // Revocation needs the store: 503, and nothing is lost.
    let r = client()
        .delete(setup.url("/api/oauth/token/canvas"))
        .bearer_auth(cluster.jwt(cached))
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 503);
    assert_eq!(json_of(r).await["error"], "store_unavailable");

    relay.restore().await;
    // Recovery without a restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = client()
            .get(setup.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        if ready.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for user in [cached, uncached, due] {
        let r = setup
            .get_as(cluster.jwt(user), "/canvas/api/v1/users/self")
            .await;
        assert_eq!(r.status(), 200, "{user} after recovery");
    }
    assert_eq!(setup.stored_users().len(), 3);
}

#[tokio::test]
async fn store_copy_moves_grants_between_sqlite_and_postgres_and_back() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("ada", &access, &refresh, now() + 3600);
    setup.import_grant("bob", &access, &refresh, now() + 3600);
    let sqlite = format!("sqlite://{}", setup.db_path().display());
    let copy =
        |from: &str, to: &str| setup.cli(&["store", "copy", "--from", from, "--to", to], None);
    for _ in 0..2 {
        let out = copy(&sqlite, &db.url);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("copied 2 grants"));
    }
    let mut conn = db.connect().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM lms_proxy_grants")
        .fetch_one(&mut conn)
        .await
        .expect("count");
    assert_eq!(rows, 2, "copying twice leaves one row per grant");

    // Back, into a new SQLite file, and a proxy on it serves the grants (the sealed bytes
    // open with the same master key).
    let back = setup.dir.path().join("back.db");
    let out = copy(&db.url, &format!("sqlite://{}", back.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    setup.edit_config(|t| {
        t.replace(
            "url = \"sqlite://data/lms-proxy.db\"",
            &format!("url = \"sqlite://{}\"", back.display()),
        )
    });
    let _proxy = setup.start_proxy();
    let r = setup
        .get_as(setup.mint("quiz", "bob"), "/canvas/api/v1/users/self")
        .await;
    assert_eq!(r.status(), 200);

    // A password on the command line is refused, and nothing is copied.
    let out = copy(&sqlite, "postgres://u:secret@127.0.0.1/x");
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_lti_service_token_serves_every_instance_and_is_renewed_once() {
    let _one_at_a_time = SERIAL.lock().await;
    let db = TestDb::new().await;
    let nrps = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
    let pem = lms_proxy::lti_keys::generate_pem(2048).expect("key");
    let cluster = Cluster::start_with(
        3,
        &db.url,
        "lti_client_id = \"10000000000001\"",
        &format!(
            "\n[[routes]]\nprefix = \"/canvas-lti\"\nplatform = \"canvas\"\ngrant = \"client_credentials\"\nscopes = [\"{nrps}\"]\n\n[lti]\nsigning_keys = [\"lti.pem\"]\n"
        ),
        |setup| std::fs::write(setup.config_path().with_file_name("lti.pem"), &pem).expect("key file"),
    );
    cluster
        .lms
        .admin(
            "lti",
            json!({"jwks_url": cluster.setups[0].url("/.well-known/jwks.json")}),
        )
        .await;
    let now = now();
    let job = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "quiz", "aud": cluster.public_url, "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(TOOL_SECRET.as_bytes()),
    )
    .expect("jwt");
    let roster = "/canvas-lti/api/lti/courses/7/names_and_roles";

    let statuses = cluster.burst(roster, &job, 60).await;
    assert!(all_ok(&statuses, 60), "{statuses:?}");
    assert_eq!(cluster.lms.counter("client_credentials").await, 1);

    // Dead at the LMS: every instance finds it rejected; one new token for all of them.
    cluster
        .lms
        .admin("lti", json!({"expire_tokens": true}))
        .await;
    let statuses = cluster.burst(roster, &job, 90).await;
    assert!(all_ok(&statuses, 90), "{statuses:?}");
    assert_eq!(cluster.lms.counter("client_credentials").await, 2);
    assert_eq!(cluster.lms.counter("client_credentials_refused").await, 0);
}
