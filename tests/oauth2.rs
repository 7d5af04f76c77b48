//! Generic OAuth2 end to end: the real binary against the sandbox LMS answering as a generic
//! OAuth2 server (`lms-sandbox --kind oauth2`). Everything the proxy knows of it comes from
//! the issuer's RFC 8414 metadata: endpoints, `client_secret_post` (the sandbox refuses HTTP
//! Basic), S256 PKCE, userinfo for who consented, RFC 7009 revocation. Metadata documents the
//! test serves itself cover the OpenID Connect fallback and a wrong issuer.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SELF: &str = "/idp/api/v1/users/self";

fn generic() -> (SandboxLms, Setup) {
    let lms = SandboxLms::start_with(&["--kind", "oauth2"]);
    let setup = Setup::new(&lms.origin, "");
    setup.add_platform(
        "idp",
        "oauth2",
        &lms.origin,
        &format!("issuer = \"{}\"\nscopes = [\"api\"]", lms.origin),
    );
    (lms, setup)
}

async fn ada_connected(expires_at: i64) -> (SandboxLms, Setup, Proxy, String, String) {
    let (lms, setup) = generic();
    let (access, refresh) = lms.grant(42, 3600, None).await;
    setup.import_on("idp", "ada", (&access, &refresh), expires_at, "42");
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "ada");
    (lms, setup, proxy, jwt, access)
}

/// Serves fixed JSON documents by path on a loopback port (everything else is a 404), made
/// by `documents` from the server's own origin, since a metadata document names it. Returns
/// the origin; the server lives as long as the test's runtime.
async fn serve_documents_for(documents: impl FnOnce(&str) -> Vec<(String, Value)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let documents = Arc::new(documents(&origin));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let documents = Arc::clone(&documents);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let path = text.split(' ').nth(1).unwrap_or("").to_string();
                let answer = match documents.iter().find(|(p, _)| *p == path) {
                    Some((_, body)) => {
                        let body = body.to_string();
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    }
                    None => {
                        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            .to_string()
                    }
                };
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn consent_follows_the_metadata_and_learns_the_user_from_userinfo() {
    let (lms, setup) = generic();
    let _proxy = setup.start_proxy();

    let jwt = setup.mint_with_lms_user("quiz", "ada", "42");
    let r = setup.get_as(&jwt, SELF).await;
    assert_eq!(r.status(), 401);
    let consent = begin_consent(json_of(r).await["authorize_url"].as_str().unwrap()).await;
    // The authorization endpoint and PKCE come from the metadata.
    assert_eq!(consent.authorize.path(), "/oauth2/auth");
    let pairs: Vec<(String, String)> = consent.authorize.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("code_challenge_method".into(), "S256".into())));
    // The code is redeemed with client_secret_post: the sandbox refuses HTTP Basic.
    let done = consent.complete(42).await;
    let location = done.headers()["location"].to_str().unwrap().to_string();
    assert!(!location.contains("lms_proxy_error"), "{location}");
    let r = setup.get_as(&jwt, SELF).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json_of(r).await["id"], 42);

    // The token answer names nobody; userinfo says 42, not the 43 the tool expected.
    let jwt = setup.mint_with_lms_user("quiz", "grace", "43");
    let location = consent_after_refusal(&setup, &jwt, SELF, 42).await;
    assert!(
        location.contains("lms_proxy_error=lms_user_mismatch"),
        "{location}"
    );
    assert_eq!(setup.stored_users(), ["ada"]);
    assert_eq!(lms.counter("authorization_code").await, 2);
}

#[tokio::test]
async fn link_pagination_comes_back_through_the_proxy_to_the_end() {
    let (_lms, setup, _proxy, jwt, _) = ada_connected(now() + 3600).await;
    let mut url = setup.url("/idp/api/v1/courses?per_page=10");
    let mut seen = BTreeSet::new();
    loop {
        let r = client()
            .get(&url)
            .bearer_auth(&jwt)
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), 200);
        let link = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        for course in r.json::<Vec<Value>>().await.expect("json") {
            assert!(seen.insert(course["id"].as_u64().unwrap()));
        }
        let next = link
            .split(',')
            .find(|l| l.contains("rel=\"next\""))
            .and_then(|l| l.split(['<', '>']).nth(1))
            .map(str::to_string);
        match next {
            Some(next) => {
                assert!(next.starts_with(&setup.url("/idp/")), "{next}");
                url = next;
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
}

#[tokio::test]
async fn refreshes_rotate_dead_tokens_are_replayed_and_refusals_end_the_grant() {
    let (lms, setup, _proxy, jwt, _) = ada_connected(now() - 1).await;
    refreshes_once_per_round(&lms, &setup, &jwt, SELF, 2).await;

    // A dead token (401 with WWW-Authenticate): refreshed and replayed; the grant gone at
    // the server: refused, deleted, authorization_required.
    lms.admin("settings", json!({"access_token_ttl": 3600}))
        .await;
    dead_token_replayed_then_refused_grant(&lms, &setup, "idp", SELF, "42").await;
    assert_eq!(setup.stored_users(), ["ada", "bob"]);
}

#[tokio::test]
async fn disconnect_revokes_at_the_rfc_7009_endpoint() {
    let (lms, setup, _proxy, jwt, access) = ada_connected(now() + 3600).await;
    let r = client()
        .delete(setup.url("/api/oauth/token/idp"))
        .bearer_auth(&jwt)
        .send()
        .await
        .expect("revoke");
    assert_eq!(r.status(), 204);
    assert!(setup.stored_users().is_empty());
    assert_eq!(lms.counter("revocations").await, 1);
    // The whole grant is gone at the server, access token included.
    let r = client()
        .get(format!("{}/api/v1/users/self", lms.origin))
        .bearer_auth(&access)
        .send()
        .await
        .expect("old token");
    assert_eq!(r.status(), 401);
}

// Multi-threaded: the document server answers while the test waits on `check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_discovery_is_the_fallback_and_a_wrong_issuer_is_refused() {
    let lms = SandboxLms::start_with(&["--kind", "oauth2"]);
    let o = &lms.origin;
    let documents = |issuer: &str| {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{o}/oauth2/auth"),
            "token_endpoint": format!("{o}/oauth2/token"),
            "userinfo_endpoint": format!("{o}/oauth2/userinfo"),
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        })
    };
    // `/tenant` publishes only OpenID Connect discovery; `/other` an RFC 8414 document
    // naming another issuer.
    let server = serve_documents_for(|origin| {
        vec![
            (
                "/tenant/.well-known/openid-configuration".to_string(),
                documents(&format!("{origin}/tenant")),
            ),
            (
                "/.well-known/oauth-authorization-server/other".to_string(),
                documents(&format!("{origin}/someone-else")),
            ),
        ]
    })
    .await;

    let setup = Setup::new(o, "");
    setup.add_platform(
        "idp",
        "oauth2",
        o,
        &format!("issuer = \"{server}/tenant\"\nscopes = [\"api\"]"),
    );
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    setup.edit_config(|t| t.replace(&format!("{server}/tenant"), &format!("{server}/other")));
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("platforms[2].issuer: the metadata names issuer")
            && text.contains("someone-else"),
        "{text}"
    );
    // Nothing there at all: said, with both addresses tried.
    setup.edit_config(|t| t.replace(&format!("{server}/other"), &format!("{server}/nobody")));
    let out = setup.cli(&["check", "-c", "{config}"], None);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("platforms[2].issuer: no metadata"), "{text}");
}
