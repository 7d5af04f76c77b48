//! Refresh: proactive, single-flight, refused, unavailable, and after the LMS rejects a
//! token on the wire.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn get(setup: &Setup, jwt: &str, path: &str) -> reqwest::Response {
    setup.get_as(jwt, path).await
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_for_200_concurrent_requests() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    // A slow token endpoint makes sure the requests really overlap the refresh.
    lms.admin("settings", json!({"token_delay_ms": 300})).await;

    let client = client();
    let requests = (0..200).map(|_| {
        let client = client.clone();
        let url = setup.url("/canvas/api/v1/users/self");
        let jwt = jwt.clone();
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(jwt)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let mut ok = 0;
    for r in requests {
        if r.await.unwrap().unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 200, "{}", proxy.log_text());
    assert_eq!(lms.stats().await["refresh_token"], 1);
    // Canvas killed the old access token; the proxy holds the new one.
    let r = client
        .get(format!("{}/api/v1/users/self", lms.origin))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The new token survives a restart, and the refresh token was kept (Canvas sends none).
    drop(proxy);
    let _proxy = setup.start_proxy();
    assert_eq!(
        get(&setup, &jwt, "/canvas/api/v1/users/self")
            .await
            .status(),
        200
    );
    assert_eq!(lms.stats().await["refresh_token"], 1);
}

#[tokio::test]
async fn rotated_refresh_tokens_are_persisted_before_use() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    lms.admin(
        "settings",
        json!({"rotate_refresh": true, "access_token_ttl": 1}),
    )
    .await;
    let (access, refresh) = lms.grant(42, 1, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 1);
    let jwt = setup.mint("quiz", "alice");
    for round in 1..=3 {
        // A new process each round: only what was persisted survives.
        let _proxy = setup.start_proxy();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = get(&setup, &jwt, "/canvas/api/v1/users/self").await;
        assert_eq!(r.status(), 200, "round {round}");
        assert_eq!(lms.stats().await["refresh_token"], round);
    }
}

#[tokio::test]
async fn a_refused_refresh_deletes_the_grant() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    // The user removed the app in Canvas: "refresh_token not found".
    lms.admin("revoke_grant", json!({"access_token": access}))
        .await;
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "alice");
    let r = get(&setup, &jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 401);
    let body = json_of(r).await;
    assert_eq!(body["error"], "authorization_required");
    assert!(body["authorize_url"]
        .as_str()
        .unwrap()
        .contains("/oauth/start/canvas?ticket="));
    assert!(setup.stored_users().is_empty());
}

#[tokio::test]
async fn token_endpoint_down_keeps_a_valid_token_else_503() {
    let lms = SandboxLms::start();
    let setup = Setup::new(&lms.origin, "");
    let (valid, valid_refresh) = lms.grant(42, 3600, None).await;
    let (dead, dead_refresh) = lms.grant(43, 3600, None).await;
    // Due in 8 s (half of its 16 s life), valid for 16 s.
    setup.import(
        "quiz",
        &format!("{{\"user\":\"soon\",\"access_token\":\"{valid}\",\"refresh_token\":\"{valid_refresh}\",\"expires_in\":16}}\n"),
    );
    let imported = std::time::Instant::now();
    setup.import_grant("gone", &dead, &dead_refresh, now() - 10);
    let _proxy = setup.start_proxy();

    for mode in ["down", "error"] {
        // After a failure the platform's token endpoint is tried once a second at most.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        lms.admin("settings", json!({"token_endpoint": mode})).await;
        let r = get(
            &setup,
            &setup.mint("quiz", "gone"),
            "/canvas/api/v1/users/self",
        )
        .await;
        assert_eq!(r.status(), 503, "{mode}");
        assert_eq!(r.headers()["retry-after"], "30");
        assert_eq!(json_of(r).await["error"], "lms_unavailable");
    }
    // Due by now, and a second after the last failure: the back-off lets one call out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    tokio::time::sleep_until((imported + Duration::from_millis(8100)).into()).await;
    let r = get(
        &setup,
        &setup.mint("quiz", "soon"),
        "/canvas/api/v1/users/self",
    )
    .await;
    assert_eq!(r.status(), 200, "a still-valid token keeps being used");
    assert!(lms.stats().await["refresh_token"].as_u64().unwrap() >= 3);
    // Both grants are kept: nothing was refused.
    assert_eq!(setup.stored_users(), vec!["gone", "soon"]);
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_503() {
    let lms = SandboxLms::start();
    let setup = Setup::with_platform(
        &lms.origin,
        &format!("token_url = \"http://127.0.0.1:{}/token\"", free_port()),
        "",
    );
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    let _proxy = setup.start_proxy();
    let r = get(
        &setup,
        &setup.mint("quiz", "alice"),
        "/canvas/api/v1/users/self",
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(json_of(r).await["error"], "lms_unavailable");
}

#[tokio::test]
async fn a_wrong_client_secret_keeps_the_token_and_logs_the_platform() {
    let lms = SandboxLms::start();
    let mut setup = Setup::new(&lms.origin, "");
    setup
        .env
        .insert("CANVAS_CLIENT_SECRET".into(), "not-the-secret".into());
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_grant("alice", &access, &refresh, now() - 10);
    let proxy = setup.start_proxy();
    let r = get(
        &setup,
        &setup.mint("quiz", "alice"),
        "/canvas/api/v1/users/self",
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(json_of(r).await["error"], "lms_unavailable");
    assert_eq!(setup.stored_users(), vec!["alice"]);
    let log = proxy
        .log_when(|log| log.contains("client_id/client_secret"))
        .await;
    let line = log
        .lines()
        .find(|l| l.contains("client_id/client_secret"))
        .unwrap_or_else(|| panic!("no error line naming the platform:\n{log}"));
    assert!(
        line.contains("\"level\":\"ERROR\"") && line.contains("\"platform\":\"canvas\""),
        "{line}"
    );
    assert!(!log.contains("not-the-secret"));
}

/// A POST the LMS answers by echoing the body: one that must be replayed after a refresh.
async fn post_topic(setup: &Setup, jwt: &str, body: String) -> reqwest::Response {
    client()
        .post(setup.url("/canvas/api/v1/courses/1/discussion_topics"))
        .bearer_auth(jwt)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dead_token_on_the_wire_is_refreshed_and_the_request_replayed() {
    let (lms, setup, proxy, jwt) = expired_at_the_lms().await;
    let r = post_topic(&setup, &jwt, "{\"title\":\"replayed\"}".into()).await;
    assert_eq!(r.status(), 200, "{}", proxy.log_text());
    assert_eq!(r.text().await.unwrap(), "{\"title\":\"replayed\"}");
    assert_eq!(lms.stats().await["refresh_token"], 1);

    // 401 without WWW-Authenticate and the throttle's 403 are the LMS's answers: no refresh.
    assert_eq!(
        get(&setup, &jwt, "/canvas/api/v1/accounts/1")
            .await
            .status(),
        401
    );
    assert_eq!(lms.stats().await["refresh_token"], 1);
}

#[tokio::test]
async fn a_body_too_large_to_replay_answers_authorization_required() {
    let (lms, setup, _proxy, jwt) = expired_at_the_lms().await;
    // Past pingora's 64 KiB replay buffer, under the sandbox's 2 MiB body limit.
    let big = "x".repeat(1024 * 1024);
    let r = post_topic(&setup, &jwt, big).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "authorization_required");
    // The token was refreshed all the same, so the tool's next try goes through.
    assert_eq!(
        get(&setup, &jwt, "/canvas/api/v1/users/self")
            .await
            .status(),
        200
    );
    assert_eq!(lms.stats().await["refresh_token"], 1);
}

#[tokio::test]
async fn when_the_refreshed_token_is_rejected_too_the_grant_is_kept() {
    let (lms, setup, _proxy, jwt) = expired_at_the_lms().await;
    // Every new token is born expired: the replay fails as well, as when another process's
    // late refresh kills the token just issued. The LMS never refused the refresh token.
    lms.admin("settings", json!({"access_token_ttl": 0})).await;
    let r = get(&setup, &jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(json_of(r).await["error"], "lms_unavailable");
    assert_eq!(lms.stats().await["refresh_token"], 1);
    assert_eq!(setup.stored_users(), ["alice"]);
    // The next request refreshes again and goes through.
    lms.admin("settings", json!({"access_token_ttl": 3600}))
        .await;
    let r = get(&setup, &jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200);
    assert_eq!(lms.stats().await["refresh_token"], 2);
}
