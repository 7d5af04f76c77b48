//! Brightspace end to end: the real binary against the sandbox LMS answering as Brightspace
//! (`lms-sandbox --kind brightspace`): HTTP Basic client authentication, single-use refresh
//! tokens, who consented from `whoami`, 401 without `WWW-Authenticate` as a dead token,
//! `Next` in ObjectListPage bodies rewritten to the proxy, 429 passed through, no revocation.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

const WHOAMI: &str = "/d2l/d2l/api/lp/1.0/users/whoami";
const CLASSLIST: &str = "/d2l/d2l/api/le/1.67/6606/classlist/paged/";

/// A sandbox answering as Brightspace and a proxy with platform `d2l` on it (route `/d2l`),
/// which the quiz tool may use.
fn brightspace() -> (SandboxLms, Setup) {
    let lms = SandboxLms::start_with(&["--kind", "brightspace"]);
    let origin = lms.origin.clone();
    let setup = Setup::new(&origin, "");
    setup.add_platform(
        "d2l",
        "brightspace",
        &origin,
        &format!(
            "authorize_url = \"{origin}/oauth2/auth\"\ntoken_url = \"{origin}/core/connect/token\"\nscopes = [\"core:*:*\"]"
        ),
    );
    (lms, setup)
}

fn import_d2l(setup: &Setup, user: &str, access: &str, refresh: &str, expires_at: i64) {
    setup.import_on("d2l", user, (access, refresh), expires_at, "42");
}

/// Ada connected with a grant from the sandbox expiring at `expires_at` (as the proxy knows
/// it), the proxy running, and her tool JWT; plus the grant's access token.
async fn ada_connected(expires_at: i64) -> (SandboxLms, Setup, Proxy, String, String) {
    let (lms, setup) = brightspace();
    let (access, refresh) = lms.grant(42, 3600, None).await;
    import_d2l(&setup, "ada", &access, &refresh, expires_at);
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "ada");
    (lms, setup, proxy, jwt, access)
}

#[tokio::test]
async fn consent_learns_the_user_from_whoami_and_checks_it() {
    let (lms, setup) = brightspace();
    let _proxy = setup.start_proxy();

    // Ada connects; the token answer names nobody, so the proxy asks whoami.
    let jwt = setup.mint_with_lms_user("quiz", "ada", "42");
    let r = setup.get_as(&jwt, WHOAMI).await;
    assert_eq!(r.status(), 401);
    let body = json_of(r).await;
    assert_eq!(body["error"], "authorization_required");
    let consent = begin_consent(body["authorize_url"].as_str().unwrap()).await;
    assert!(consent.authorize.path().ends_with("/oauth2/auth"));
    let done = consent.complete(42).await;
    let location = done
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        done.status().is_redirection() && !location.contains("lms_proxy_error"),
        "{} {location}",
        done.status()
    );
    let r = setup.get_as(&jwt, WHOAMI).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["Identifier"], "42");

    // Grace says she is user 43 to the tool but consents as 42: not stored.
    let jwt = setup.mint_with_lms_user("quiz", "grace", "43");
    let location = consent_after_refusal(&setup, &jwt, WHOAMI, 42).await;
    assert!(
        location.contains("lms_proxy_error=lms_user_mismatch"),
        "{location}"
    );
    assert_eq!(setup.stored_users(), ["ada"]);
    assert_eq!(lms.counter("authorization_code").await, 2);
}

#[tokio::test]
async fn next_links_lead_back_through_the_proxy_to_the_last_page() {
    let (_lms, setup, _proxy, jwt, _) = ada_connected(now() + 3600).await;

    let mut url = setup.url(CLASSLIST);
    let mut seen = BTreeSet::new();
    let mut pages = 0;
    loop {
        let r = client()
            .get(&url)
            .bearer_auth(&jwt)
            // Asked compressed: the proxy asks the LMS for identity, so it can rewrite.
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("content-encoding").is_none());
        let page: Value = r.json().await.expect("json");
        pages += 1;
        for item in page["Objects"].as_array().expect("Objects") {
            assert!(seen.insert(item["Identifier"].as_str().unwrap().to_string()));
        }
        match page["Next"].as_str() {
            Some(next) => {
                assert!(
                    next.starts_with(&setup.url("/d2l/d2l/api/le/1.67/6606/classlist/paged/")),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!((pages, seen.len()), (3, 25));
}

#[tokio::test]
async fn refreshes_rotate_and_a_used_refresh_token_is_never_sent_again() {
    let (lms, setup) = brightspace();
    let (access, refresh) = lms.grant(42, 3600, None).await;
    import_d2l(&setup, "ada", &access, &refresh, now() - 1);
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "ada");

    refreshes_once_per_round(&lms, &setup, &jwt, WHOAMI, 3).await;
}

#[tokio::test]
async fn a_401_without_www_authenticate_is_a_dead_token_refreshed_and_replayed() {
    let (lms, setup, _proxy, jwt, access) = ada_connected(now() + 3600).await;
    lms.admin("expire", json!({"access_token": access})).await;

    let r = setup.get_as(&jwt, WHOAMI).await;
    assert_eq!(r.status(), 200);
    assert_eq!(lms.counter("refresh_token").await, 1);

    // The user removes the app at the LMS: the refresh is refused, the grant deleted.
    let (other_access, other_refresh) = lms.grant(42, 3600, None).await;
    import_d2l(&setup, "bob", &other_access, &other_refresh, now() + 3600);
    lms.admin("revoke_grant", json!({"access_token": other_access}))
        .await;
    let bob = setup.mint("quiz", "bob");
    let r = setup.get_as(&bob, WHOAMI).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "authorization_required");
    assert_eq!(setup.stored_users(), ["ada"]);
}

#[tokio::test]
async fn throttling_passes_through_and_disconnect_deletes_locally() {
    let (lms, setup, proxy, jwt, access) = ada_connected(now() + 3600).await;

    lms.fill_bucket(&access, 700.0).await;
    let r = setup.get_as(&jwt, WHOAMI).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(lms.counter("refresh_token").await, 0);

    let r = client()
        .delete(setup.url("/api/oauth/token/d2l"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    assert!(setup.stored_users().is_empty());
    assert_eq!(lms.counter("revocations").await, 0);
    let log = proxy
        .log_when(|l| l.contains("no revocation endpoint"))
        .await;
    assert!(log.contains("no revocation endpoint"), "{log}");
}

#[test]
fn check_asks_for_brightspace_scopes() {
    let (_lms, setup) = brightspace();
    setup.edit_config(|t| t.replace("scopes = [\"core:*:*\"]\n", ""));
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("platforms[2].scopes: brightspace needs the scopes to ask for"),
        "{text}"
    );
}
