//! Blackboard Learn end to end: the real binary against the sandbox LMS answering as
//! Blackboard (`lms-sandbox --kind blackboard`): HTTP Basic client authentication, `offline`
//! asked for, the user from the token answer's `user_id`, rotating refresh tokens, any 401 a
//! dead token, `paging.nextPage` left root-relative, 429 passed through, its OAuth endpoints
//! never reachable through a route, and no revocation.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const ME: &str = "/bb/learn/api/public/v1/users/me";
const ADA: &str = "00000000-0000-4000-8000-000000000042";

fn blackboard() -> (SandboxLms, Setup) {
    let lms = SandboxLms::start_with(&["--kind", "blackboard"]);
    let setup = Setup::new(&lms.origin, "");
    setup.add_platform("bb", "blackboard", &lms.origin, "scopes = [\"read\"]");
    (lms, setup)
}

async fn ada_connected(expires_at: i64) -> (SandboxLms, Setup, Proxy, String, String) {
    let (lms, setup) = blackboard();
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_on("bb", "ada", (&access, &refresh), expires_at, ADA);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "ada");
    (lms, setup, proxy, jwt, access)
}

#[tokio::test]
async fn consent_asks_for_offline_and_checks_the_user_id_of_the_token_answer() {
    let (_lms, setup) = blackboard();
    let _proxy = setup.start_proxy();
    let jwt = setup.mint_with_lms_user("quiz", "ada", ADA);
    let r = setup.get_as(&jwt, ME).await;
    assert_eq!(r.status(), 401);
    let start = json_of(r).await["authorize_url"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = begin_consent(&start).await;
    assert!(consent
        .authorize
        .path()
        .ends_with("/learn/api/public/v1/oauth2/authorizationcode"));
    let scope = consent
        .authorize
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("read offline"));
    let done = consent.complete(42).await;
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(!location.contains("lms_proxy_error"), "{location}");
    let r = setup.get_as(&jwt, ME).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["uuid"], ADA);

    // Someone else's consent for a tool user who is Ada: not stored.
    let jwt = setup.mint_with_lms_user("quiz", "not-ada", ADA);
    let r = setup.get_as(&jwt, ME).await;
    let consent = begin_consent(json_of(r).await["authorize_url"].as_str().unwrap()).await;
    let done = consent.complete(43).await;
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("lms_proxy_error=lms_user_mismatch"),
        "{location}"
    );
    assert_eq!(setup.stored_users(), ["ada"]);
}

#[tokio::test]
async fn next_pages_stay_root_relative_and_work_against_the_base_url() {
    let (_lms, setup, _proxy, jwt, _) = ada_connected(now() + 3600).await;
    let base = setup.url("/bb");
    let mut path = "/learn/api/public/v3/courses".to_string();
    let mut seen = BTreeSet::new();
    loop {
        // As Blackboard's clients do: base URL + nextPage.
        let r = client()
            .get(format!("{base}{path}"))
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.expect("json");
        for course in page["results"].as_array().expect("results") {
            assert!(seen.insert(course["id"].as_str().unwrap().to_string()));
        }
        match page["paging"]["nextPage"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with("/learn/api/public/v3/courses?offset="),
                    "{next}"
                );
                path = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
}

#[tokio::test]
async fn refreshes_rotate_dead_tokens_are_replayed_and_refusals_end_the_grant() {
    let (lms, setup, _proxy, jwt, access) = ada_connected(now() - 1).await;
    refreshes_once_per_round(&lms, &setup, &jwt, ME, 2).await;
    // Blackboard lets an access token issued before a refresh live out its time.
    let r = client()
        .get(format!("{}/learn/api/public/v1/users/me", lms.origin))
        .bearer_auth(&access)
        .send()
        .await
        .expect("old token");
    assert_eq!(r.status(), 200);

    // A token the LMS no longer takes: 401 with no WWW-Authenticate, refreshed and replayed;
    // the grant removed at the LMS: refused, deleted, authorization_required.
    lms.admin("settings", json!({"access_token_ttl": 3600}))
        .await;
    dead_token_replayed_then_refused_grant(&lms, &setup, "bb", ME, ADA).await;
    assert_eq!(setup.stored_users(), ["ada", "bob"]);
}

#[tokio::test]
async fn throttling_passes_its_oauth_endpoints_are_closed_and_disconnect_is_local() {
    let (lms, setup, _proxy, jwt, access) = ada_connected(now() + 3600).await;
    let r = setup
        .get_as(&jwt, "/bb/learn/api/public/v1/oauth2/token")
        .await;
    assert_eq!(r.status(), 403);

    lms.fill_bucket(&access, 700.0).await;
    let r = setup.get_as(&jwt, ME).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");

    let r = client()
        .delete(setup.url("/api/oauth/token/bb"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    assert!(setup.stored_users().is_empty());
    assert_eq!(lms.counter("revocations").await, 0);
}
