//! The consent flow and the tool endpoints, through the real binary and the sandbox LMS.

mod common;

use common::*;
use serde_json::{json, Value};

const EXPORTER: &str = r#"
[[tools]]
id = "exporter"
secret_env = "EXPORTER_TOOL_SECRET"
platforms = ["canvas"]
export_tokens = true
"#;

struct World {
    lms: SandboxLms,
    setup: Setup,
    proxy: Proxy,
}

async fn world() -> World {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, EXPORTER);
    let proxy = setup.start_proxy();
    World { lms, setup, proxy }
}

impl World {
    async fn authorize_url(&self, jwt: &str) -> String {
        let r = self.setup.get_as(jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 401);
        json_of(r).await["authorize_url"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn me(&self, jwt: &str) -> reqwest::Response {
        self.setup.get_as(jwt, "/canvas/api/v1/users/self").await
    }

    async fn status(&self, jwt: &str, query: &str) -> Value {
        let r = self
            .setup
            .get_as(jwt, &format!("/api/oauth/status/canvas{query}"))
            .await;
        assert_eq!(r.status(), 200);
        json_of(r).await
    }
}

fn assert_html_400(r_status: u16, body: &str, needle: &str) {
    assert_eq!(r_status, 400, "{body}");
    assert!(body.contains("<html>"), "{body}");
    assert!(body.contains(needle), "missing {needle:?} in {body}");
}

#[tokio::test]
async fn consent_from_the_401_connects_the_user() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "bob");
    let start = w.authorize_url(&jwt).await;
    let consent = begin_consent(&start).await;

    // The redirect to the LMS carries what Canvas needs, PKCE included.
    let q: std::collections::HashMap<String, String> =
        consent.authorize.query_pairs().into_owned().collect();
    assert_eq!(
        consent.authorize.as_str().split('?').next().unwrap(),
        format!("{}/login/oauth2/auth", w.lms.origin)
    );
    assert_eq!(q["client_id"], "10000000000001");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], w.setup.url("/oauth/callback/canvas"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43, "state is 256 bits");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
        "Path=/oauth/callback/",
    ] {
        assert!(consent.set_cookie.contains(attr), "{}", consent.set_cookie);
    }
    assert!(!consent.set_cookie.contains("Secure"), "public_url is http");

    let callback = consent.complete(43).await;
    assert_eq!(callback.status(), 302);
    // No return_to in the ticket: the tool's first return_to entry.
    assert_eq!(callback.headers()["location"], "https://quiz.example.edu/");
    assert!(callback.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    let r = w.me(&jwt).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["id"], 43);
    let status = w.status(&jwt, "").await;
    assert_eq!(status["connected"], true);
    assert_eq!(status["lms_user_id"], "43");
    assert!(status["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(status["authorize_url"]
        .as_str()
        .unwrap()
        .starts_with(&w.setup.url("/oauth/start/canvas?ticket=")));

    // The SQLite file holds no plaintext token, and the log no token, code or state.
    let stats = w.lms.stats().await;
    assert_eq!(stats["authorization_code"], 1);
    let db = std::fs::read(w.setup.db_path()).unwrap();
    let wal = std::fs::read(format!("{}-wal", w.setup.db_path().display())).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(8).any(|win| win == b"sandbox~"),
            "plaintext access token in the store"
        );
        assert!(
            !bytes.windows(16).any(|win| win == b"sandbox-refresh~"),
            "plaintext refresh token in the store"
        );
    }
    // Stopped first, so the log is complete (the last lines are flushed at shutdown).
    let (status, log) = w.proxy.terminate();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{log}");
    for secret in [
        q["state"].as_str(),
        "sandbox~",
        "sandbox-refresh~",
        "code=",
        "ticket=",
        jwt.as_str(),
    ] {
        assert!(!log.contains(secret), "{secret} in log:\n{log}");
    }
}

#[tokio::test]
async fn status_return_to_is_where_the_browser_lands() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "carol");
    let status = w
        .status(
            &jwt,
            "?return_to=https%3A%2F%2Fquiz.example.edu%2Fcourse%2F7%3Ftab%3D2",
        )
        .await;
    assert_eq!(status["connected"], false);
    assert_eq!(status["expires_at"], Value::Null);
    assert_eq!(status["lms_user_id"], Value::Null);
    let consent = begin_consent(status["authorize_url"].as_str().unwrap()).await;
    let r = consent.complete(44).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://quiz.example.edu/course/7?tab=2"
    );

    // A return_to outside the tool's list is refused before any ticket is made.
    let r = client()
        .get(
            w.setup
                .url("/api/oauth/status/canvas?return_to=https%3A%2F%2Fevil.example%2F"),
        )
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"], "invalid_request");
}

#[tokio::test]
async fn start_with_a_tool_jwt_and_return_to() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "dave");
    let start = w.setup.url(&format!(
        "/oauth/start/canvas?token={jwt}&return_to=https%3A%2F%2Fquiz.example.edu%2Fdone"
    ));
    let consent = begin_consent(&start).await;
    let r = consent.complete(42).await;
    assert_eq!(r.headers()["location"], "https://quiz.example.edu/done");

    // Open redirect attempts and bad credentials: a page, never a redirect.
    for (url, needle) in [
        (format!("/oauth/start/canvas?token={jwt}&return_to=https%3A%2F%2Fquiz.example.edu.evil.com%2F"), "return address"),
        ("/oauth/start/canvas?token=not.a.jwt".to_string(), "credential was refused"),
        ("/oauth/start/canvas".to_string(), "ticket"),
        ("/oauth/start/canvas?ticket=forged.ticket".to_string(), "not one this proxy issued"),
        ("/oauth/start/nowhere?ticket=x".to_string(), "no such platform"),
    ] {
        let r = client().get(w.setup.url(&url)).send().await.unwrap();
        assert!(r.headers().get("location").is_none(), "{url} redirected");
        let status = r.status().as_u16();
        assert_html_400(status, &r.text().await.unwrap(), needle);
    }
}

#[tokio::test]
async fn tickets_and_state_are_single_use_and_bound_to_the_browser() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "erin");
    let start = w.authorize_url(&jwt).await;
    let consent = begin_consent(&start).await;
    // The same ticket again: refused.
    let r = client().get(&start).send().await.unwrap();
    let status = r.status().as_u16();
    assert_html_400(status, &r.text().await.unwrap(), "used already");

    let callback = consent.decide(Some(42)).await;
    // Without the cookie (another browser): refused, nothing stored.
    let r = client().get(&callback).send().await.unwrap();
    let status = r.status().as_u16();
    assert_html_400(status, &r.text().await.unwrap(), "cookie is missing");
    // A forged state with the right cookie: refused.
    let forged = callback.replace("state=", "state=x");
    let r = client()
        .get(&forged)
        .header("cookie", &consent.cookie)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_html_400(status, &r.text().await.unwrap(), "");
    // No state at all.
    let r = client()
        .get(w.setup.url("/oauth/callback/canvas?code=abc"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_html_400(status, &r.text().await.unwrap(), "no state");
    assert_eq!(w.status(&jwt, "").await["connected"], false);

    // The real answer works once...
    assert_eq!(consent.callback(&callback).await.status(), 302);
    // ...and its replay is refused.
    let r = consent.callback(&callback).await;
    let status = r.status().as_u16();
    assert_html_400(status, &r.text().await.unwrap(), "used already");
    assert_eq!(w.lms.stats().await["authorization_code"], 1);
}

#[tokio::test]
async fn two_consents_in_one_browser_both_work() {
    let w = world().await;
    let alice = w.setup.mint("quiz", "alice");
    let bob = w.setup.mint("quiz", "bob");
    let first = begin_consent(&w.authorize_url(&alice).await).await;
    let second = begin_consent(&w.authorize_url(&bob).await).await;
    assert_ne!(
        first.cookie.split('=').next(),
        second.cookie.split('=').next()
    );
    let cb_first = first.decide(Some(42)).await;
    let cb_second = second.decide(Some(43)).await;
    // The browser sends both cookies with each callback.
    let both = format!("{}; {}", first.cookie, second.cookie);
    for cb in [cb_second, cb_first] {
        let r = client()
            .get(&cb)
            .header("cookie", &both)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
    }
    assert_eq!(json_of(w.me(&alice).await).await["id"], 42);
    assert_eq!(json_of(w.me(&bob).await).await["id"], 43);
}

#[tokio::test]
async fn lms_errors_go_back_to_the_tool_and_store_nothing() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "frank");
    let consent = begin_consent(&w.authorize_url(&jwt).await).await;
    let callback = consent.decide(None).await;
    let r = consent.callback(&callback).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://quiz.example.edu/?lms_proxy_error=access_denied"
    );
    assert_eq!(w.status(&jwt, "").await["connected"], false);

    // A scope the LMS does not know: invalid_scope, back to the tool.
    let lms = SandboxLms::start();
    let setup = Setup::with_platform(&lms.origin, "scopes = [\"not-a-canvas-scope\"]", "");
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "frank");
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    let consent = begin_consent(json_of(r).await["authorize_url"].as_str().unwrap()).await;
    assert_eq!(
        consent
            .authorize
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .unwrap()
            .1,
        "not-a-canvas-scope"
    );
    let r = client()
        .get(consent.authorize.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    let r = consent.callback(&callback).await;
    assert_eq!(
        r.headers()["location"],
        "https://quiz.example.edu/?lms_proxy_error=invalid_scope"
    );
}

#[tokio::test]
async fn a_different_lms_user_is_refused_and_revoked() {
    let w = world().await;
    let out = w.setup.cli(
        &[
            "mint",
            "-c",
            "{config}",
            "--tool",
            "quiz",
            "--user",
            "gina",
            "--lms-user-id",
            "42",
        ],
        None,
    );
    let jwt = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let consent = begin_consent(&w.authorize_url(&jwt).await).await;
    // Someone else (user 43) is signed in to the LMS in this browser.
    let r = consent.complete(43).await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        "https://quiz.example.edu/?lms_proxy_error=lms_user_mismatch"
    );
    assert_eq!(w.status(&jwt, "").await["connected"], false);
    assert_eq!(w.lms.stats().await["revocations"], 1);
    // The right user succeeds.
    let consent = begin_consent(&w.authorize_url(&jwt).await).await;
    assert_eq!(
        consent.complete(42).await.headers()["location"],
        "https://quiz.example.edu/"
    );
}

#[tokio::test]
async fn access_token_export_needs_export_tokens() {
    let w = world().await;
    let (access, _refresh) = w.lms.grant(42, 3600, None).await;
    w.setup.import(
        "exporter",
        &format!("{{\"user\":\"hal\",\"access_token\":\"{access}\",\"expires_in\":3600}}\n"),
    );
    w.setup.import(
        "quiz",
        &format!("{{\"user\":\"hal\",\"access_token\":\"{access}\",\"expires_in\":3600}}\n"),
    );
    let exporter = w.setup.mint("exporter", "hal");
    let r = w
        .setup
        .get_as(&exporter, "/api/oauth/access-token/canvas")
        .await;
    assert_eq!(r.status(), 200);
    let body = json_of(r).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["access_token"], access.as_str());
    let expires_in = body["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&expires_in), "{expires_in}");

    let quiz = w.setup.mint("quiz", "hal");
    let r = w
        .setup
        .get_as(&quiz, "/api/oauth/access-token/canvas")
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(json_of(r).await["error"], "forbidden");
    let nobody = w.setup.mint("exporter", "nobody");
    let r = w
        .setup
        .get_as(&nobody, "/api/oauth/access-token/canvas")
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "authorization_required");
    let r = client()
        .get(w.setup.url("/api/oauth/access-token/canvas"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "invalid_tool_credentials");
}

#[tokio::test]
async fn delete_revokes_at_the_lms_and_is_idempotent() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "ivy");
    let consent = begin_consent(&w.authorize_url(&jwt).await).await;
    consent.complete(42).await;
    assert_eq!(w.me(&jwt).await.status(), 200);
    for _ in 0..2 {
        let r = client()
            .delete(w.setup.url("/api/oauth/token/canvas"))
            .bearer_auth(&jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    assert_eq!(w.lms.stats().await["revocations"], 1);
    assert_eq!(w.status(&jwt, "").await["connected"], false);
    let r = w.me(&jwt).await;
    assert_eq!(json_of(r).await["error"], "authorization_required");

    // When the LMS cannot revoke, the local token goes all the same.
    let (access, _) = w.lms.grant(43, 3600, None).await;
    w.setup.import(
        "quiz",
        &format!("{{\"user\":\"jay\",\"access_token\":\"{access}\"}}\n"),
    );
    w.lms
        .admin("revoke_grant", json!({"access_token": access}))
        .await;
    let jay = w.setup.mint("quiz", "jay");
    let r = client()
        .delete(w.setup.url("/api/oauth/token/canvas"))
        .bearer_auth(&jay)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(w.status(&jay, "").await["connected"], false);
}

#[tokio::test]
async fn operators_see_who_called_the_tool_endpoints_and_why_consent_failed() {
    let w = world().await;
    let jwt = w.setup.mint("quiz", "frank");
    assert_eq!(w.status(&jwt, "").await["connected"], false);
    let consent = begin_consent(&w.authorize_url(&jwt).await).await;
    let callback = consent.decide(None).await;
    assert_eq!(consent.callback(&callback).await.status(), 302);
    let World { proxy, .. } = w;
    let (_, log) = proxy.terminate();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let status_line = lines
        .iter()
        .find(|l| l["path"] == "/api/oauth/status/canvas")
        .unwrap_or_else(|| panic!("no access line for the status call:\n{log}"));
    assert_eq!(status_line["tool"], "quiz", "{status_line}");
    assert_eq!(status_line["user"], "frank", "{status_line}");
    let denied = lines
        .iter()
        .find(|l| l["message"] == "consent not completed")
        .unwrap_or_else(|| panic!("no line says why consent failed:\n{log}"));
    assert_eq!(denied["reason"], "access_denied", "{denied}");
    assert_eq!(denied["user"], "frank", "{denied}");
}
