//! LTI Advantage service tokens end to end: the real binary and the sandbox LMS, which
//! checks every client assertion for real against the proxy's own JWKS. Grades go out (AGS
//! score POST) and rosters come in (NRPS) on a `grant = "client_credentials"` route, with
//! one token for many calls, one renewal for 200 requests that find it dead, key rotation
//! without a new grant, a refused assertion answered 503, and user routes as they were.

mod common;

use common::*;
use serde_json::{json, Value};

const SCORE: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/score";
const LINEITEMS: &str = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly";
const NRPS: &str = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly";
const ROSTER: &str = "/canvas-lti/api/lti/courses/7/names_and_roles";
const SCORES: &str = "/canvas-lti/api/lti/courses/7/line_items/1/scores";

/// `lms-proxy keys new --out DIR/name`: the kid it printed.
fn new_key(setup: &Setup, name: &str) -> String {
    let path = setup.config_path().with_file_name(name);
    let out = setup.cli(&["keys", "new", "--out", path.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The sandbox as Canvas with the developer key's LTI side, and a proxy whose `canvas`
/// platform names it and whose route `/canvas-lti` carries service tokens, signed with
/// key `a.pem`. The sandbox reads the proxy's JWKS URL, as a Canvas developer key would.
fn lti_setup() -> (SandboxLms, Setup, String) {
    let lms = SandboxLms::start();
    let setup = Setup::with_platform(
        &lms.origin,
        "lti_client_id = \"10000000000001\"",
        &format!(
            "\n[[routes]]\nprefix = \"/canvas-lti\"\nplatform = \"canvas\"\ngrant = \"client_credentials\"\nscopes = [\"{NRPS}\", \"{SCORE}\", \"{LINEITEMS}\"]\n\n[lti]\nsigning_keys = [\"a.pem\"]\n"
        ),
    );
    let kid = new_key(&setup, "a.pem");
    (lms, setup, kid)
}

async fn point_lms_at_jwks(lms: &SandboxLms, setup: &Setup) {
    lms.admin(
        "lti",
        json!({"jwks_url": setup.url("/.well-known/jwks.json")}),
    )
    .await;
}

/// A tool JWT without `sub`: a back-end job acting for nobody in particular.
fn job_jwt(setup: &Setup) -> String {
    let now = now();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"iss": "quiz", "aud": setup.url(""), "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(TOOL_SECRET.as_bytes()),
    )
    .unwrap()
}

async fn post_score(setup: &Setup, credential: &str) -> reqwest::Response {
    client()
        .post(setup.url(SCORES))
        .bearer_auth(credential)
        .header("content-type", "application/vnd.ims.lis.v1.score+json")
        .body(
            json!({"userId": "42", "scoreGiven": 8.5, "scoreMaximum": 10.0,
                   "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                   "timestamp": "2026-11-30T12:00:00Z"})
            .to_string(),
        )
        .send()
        .await
        .expect("score")
}

async fn lti_state(lms: &SandboxLms) -> Value {
    client()
        .get(format!("{}/__sandbox/lti", lms.origin))
        .send()
        .await
        .expect("state")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn grades_and_rosters_go_through_on_one_service_token() {
    let (lms, setup, kid) = lti_setup();
    let _proxy = setup.start_proxy();
    point_lms_at_jwks(&lms, &setup).await;

    // The JWKS: the key's public half, named by its RFC 7638 thumbprint, cacheable.
    let r = client()
        .get(setup.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let jwks: Value = r.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kid"].as_str(),
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some(kid.as_str()), Some("RSA"), Some("RS256"), Some("sig"))
    );
    assert!(
        key.get("d").is_none(),
        "the private exponent is never published"
    );

    // A grade, with a JWT that names no user.
    let job = job_jwt(&setup);
    let r = post_score(&setup, &job).await;
    assert_eq!(r.status(), 200);
    assert!(json_of(r).await["resultUrl"]
        .as_str()
        .unwrap()
        .ends_with("/results/42"));

    // The roster, with an API key and no X-LMS-User.
    let r = setup.get_as(API_KEY, ROSTER).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
    );
    assert_eq!(json_of(r).await["members"].as_array().unwrap().len(), 3);

    // Many more calls, one token.
    for _ in 0..10 {
        assert_eq!(setup.get_as(&job, ROSTER).await.status(), 200);
    }
    assert_eq!(lms.counter("client_credentials").await, 1);
    assert_eq!(lms.counter("lti_calls").await, 12);
    assert_eq!(lti_state(&lms).await["last_kid"], kid.as_str());

    // A tool that may not use the platform.
    let nowhere = setup.mint("nowhere", "x");
    let r = setup.get_as(&nowhere, ROSTER).await;
    assert_eq!(r.status(), 403);
    assert_eq!(json_of(r).await["error"], "forbidden");
    // No credential at all.
    let r = client().get(setup.url(ROSTER)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // User routes as before: a user is still needed, and the service token never serves one.
    let r = setup.get_as(&job, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 401);
    assert_eq!(json_of(r).await["error"], "invalid_tool_credentials");
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_on("canvas", "ada", (&access, &refresh), now() + 3600, "42");
    let r = setup
        .get_as(setup.mint("quiz", "ada"), "/canvas/api/v1/users/self")
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["id"], 42);
    // The service token is stored beside users' grants, under a key no tool can have.
    let out = setup.cli(&["tokens", "list", "-c", "{config}", "--json"], None);
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .any(|r| r["tool"] == "@lti" && r["user"].as_str().unwrap().starts_with("scopes-")));
}

#[tokio::test]
async fn a_dead_service_token_is_renewed_once_for_200_waiting_requests() {
    let (lms, setup, _) = lti_setup();
    let _proxy = setup.start_proxy();
    point_lms_at_jwks(&lms, &setup).await;
    let job = job_jwt(&setup);
    assert_eq!(setup.get_as(&job, ROSTER).await.status(), 200);
    assert_eq!(lms.counter("client_credentials").await, 1);

    // Canvas answers an expired service token 401 without WWW-Authenticate.
    lms.admin("lti", json!({"expire_tokens": true})).await;
    let url = setup.url(ROSTER);
    let calls = (0..200).map(|_| {
        let (url, job) = (url.clone(), job.clone());
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(job)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    for call in futures_join(calls).await {
        assert_eq!(call, 200);
    }
    assert_eq!(lms.counter("client_credentials").await, 2);
    assert_eq!(lms.counter("client_credentials_refused").await, 0);
}

/// Every spawned request's status.
async fn futures_join(
    calls: impl Iterator<Item = tokio::task::JoinHandle<Result<u16, reqwest::Error>>>,
) -> Vec<u16> {
    let mut out = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        out.push(call.await.expect("task").expect("request"));
    }
    out
}

#[tokio::test]
async fn a_new_key_signs_after_a_restart_and_old_tokens_keep_working() {
    let (lms, setup, old_kid) = lti_setup();
    let proxy = setup.start_proxy();
    point_lms_at_jwks(&lms, &setup).await;
    let job = job_jwt(&setup);
    assert_eq!(setup.get_as(&job, ROSTER).await.status(), 200);
    drop(proxy.terminate());

    // The new key goes first; the old one stays published.
    let new_kid = new_key(&setup, "b.pem");
    setup.edit_config(|t| t.replace("[\"a.pem\"]", "[\"b.pem\", \"a.pem\"]"));
    let _proxy = setup.start_proxy();
    let jwks: Value = client()
        .get(setup.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);

    // The token got with the old key is still the one in use: no new grant.
    assert_eq!(setup.get_as(&job, ROSTER).await.status(), 200);
    assert_eq!(lms.counter("client_credentials").await, 1);
    // When it dies, the next one is asked for with the new key.
    lms.admin("lti", json!({"expire_tokens": true})).await;
    assert_eq!(setup.get_as(&job, ROSTER).await.status(), 200);
    assert_eq!(lms.counter("client_credentials").await, 2);
    assert_eq!(lti_state(&lms).await["last_kid"], new_kid.as_str());
}

#[tokio::test]
async fn a_refused_assertion_is_503_and_the_reason_is_logged() {
    let (lms, setup, kid) = lti_setup();
    let proxy = setup.start_proxy();
    // The developer key holds a different public key under the proxy's kid.
    let other = lms_proxy::lti_keys::generate_pem(2048).unwrap();
    let other = lms_proxy::lti_keys::SigningKey::from_pem(other.as_bytes()).unwrap();
    let mut jwk = other.jwk();
    jwk["kid"] = Value::from(kid);
    lms.admin("lti", json!({"jwks": {"keys": [jwk]}})).await;

    let r = setup.get_as(job_jwt(&setup), ROSTER).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(json_of(r).await["error"], "lms_unavailable");
    assert_eq!(lms.counter("client_credentials_refused").await, 1);
    let log = proxy
        .log_when(|l| l.contains("refused the LTI client assertion"))
        .await;
    assert!(log.contains("InvalidSignature"), "{log}");
}

#[test]
fn check_refuses_service_routes_it_cannot_serve() {
    let setup = Setup::new(
        "http://127.0.0.1:1",
        "\n[[routes]]\nprefix = \"/lti\"\nplatform = \"canvas\"\ngrant = \"client_credentials\"\n\n[[routes]]\nprefix = \"/grades\"\nplatform = \"canvas\"\nscopes = [\"x\"]\n\n[lti]\nsigning_keys = [\"small.pem\", \"missing.pem\"]\n",
    );
    let small = lms_proxy::lti_keys::generate_pem(1024).unwrap();
    std::fs::write(setup.config_path().with_file_name("small.pem"), small).unwrap();
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "routes[2].scopes: grant = \"client_credentials\" needs the LTI scopes",
        "routes[3].scopes: only a route with grant = \"client_credentials\" takes scopes",
        "lti.signing_keys[0]: the key is smaller than 2048 bits",
        "lti.signing_keys[1]:",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // Scopes given, but the platform names no LTI client.
    setup.edit_config(|t| {
        t.replace(
            "grant = \"client_credentials\"\n",
            "grant = \"client_credentials\"\nscopes = [\"https://purl.imsglobal.org/spec/lti-ags/scope/score\"]\n",
        )
    });
    let out = setup.cli(&["check", "-c", "{config}"], None);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("routes[2].platform: grant = \"client_credentials\" needs lti_client_id"),
        "{text}"
    );
}
