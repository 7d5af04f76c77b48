//! The sandbox LMS answers the way docs/lms-behaviour.md says Canvas does: the proxy's tests
//! are only as good as this emulator.

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};

async fn token_call(lms: &SandboxLms, form: &[(&str, &str)]) -> (u16, Value, Option<String>) {
    let r = client()
        .post(format!("{}/login/oauth2/token", lms.origin))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let www = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), www)
}

/// Walks authorize -> confirm and returns the code.
async fn code_for(lms: &SandboxLms, user: u64, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&format!("{}/login/oauth2/confirm", lms.origin)).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", "10000000000001")
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", "https://tool.example/cb")
        .append_pair("state", "s1")
        .append_pair("sandbox_user", &user.to_string())
        .extend_pairs(extra);
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "s1");
    assert_eq!(q["code"].len(), 128, "a Canvas code is 128 hex digits");
    q["code"].clone()
}

const CLIENT: [(&str, &str); 2] = [
    ("client_id", "10000000000001"),
    ("client_secret", CLIENT_SECRET),
];

#[tokio::test]
async fn authorize_errors() {
    let lms = SandboxLms::start();
    let auth = |q: &str| format!("{}/login/oauth2/auth?{q}", lms.origin);
    let r = client()
        .get(auth(
            "client_id=999&response_type=code&redirect_uri=https%3A%2F%2Ft%2Fcb",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Canvas OAuth 2.0");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error":"invalid_client","error_description":"unknown client"})
    );

    lms.admin("settings", json!({"redirect_domain": "tool.example"}))
        .await;
    let r = client().get(auth("client_id=10000000000001&response_type=code&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error_description"],
        "redirect_uri does not match client settings"
    );

    let r = client().get(auth("client_id=10000000000001&response_type=token&redirect_uri=https%3A%2F%2Ftool.example%2Fcb&state=x")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://tool.example/cb?error=unsupported_response_type"),
        "{location}"
    );
    assert!(location.ends_with("&state=x"));

    let r = client().get(auth("client_id=10000000000001&response_type=code&redirect_uri=https%3A%2F%2Ftool.example%2Fcb")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Authorize as Ada Lovelace") && page.contains("Deny"));
}

#[tokio::test]
async fn token_endpoint_grants_and_errors() {
    let lms = SandboxLms::start();
    let code = code_for(&lms, 42, &[]).await;
    let exchange = |code: String| {
        let lms = &lms;
        async move {
            let mut form = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "https://tool.example/cb"),
            ];
            form.extend(CLIENT);
            token_call(lms, &form).await
        }
    };
    let (status, body, _) = exchange(code.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["id"], 42);
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["canvas_region"], "unknown");
    let first_access = body["access_token"].as_str().unwrap().to_string();
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    // A code works once.
    let (status, body, _) = exchange(code).await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (
            400,
            Some("invalid_grant"),
            Some("authorization_code not found")
        )
    );

    // Wrong secret: 401 invalid_client with WWW-Authenticate; HTTP Basic works too.
    let (status, body, www) = token_call(
        &lms,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "10000000000001"),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (401, Some("invalid_client"), Some("invalid client"))
    );
    assert!(www.is_some());
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("10000000000001:{CLIENT_SECRET}"));
    let r = client()
        .post(format!("{}/login/oauth2/token", lms.origin))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.get("refresh_token").is_none(),
        "Canvas reuses the refresh token"
    );
    let second_access = body["access_token"].as_str().unwrap().to_string();

    // The previous access token died with the refresh.
    let me = |t: String| {
        let origin = lms.origin.clone();
        async move {
            client()
                .get(format!("{origin}/api/v1/users/self"))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
        }
    };
    let r = me(first_access).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"canvas-lms\""
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["message"],
        "Invalid access token."
    );
    let r = me(second_access.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("x-request-cost")
            && r.headers().contains_key("x-rate-limit-remaining")
    );

    let mut bad_grant = vec![("grant_type", "password")];
    bad_grant.extend(CLIENT);
    assert_eq!(
        token_call(&lms, &bad_grant).await.1["error"],
        "unsupported_grant_type"
    );

    // Revocation kills access and refresh token together.
    let r = client()
        .delete(format!("{}/login/oauth2/token", lms.origin))
        .bearer_auth(&second_access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(second_access).await.status(), 401);
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    form.extend(CLIENT);
    let (status, body, _) = token_call(&lms, &form).await;
    assert_eq!(
        (
            status,
            body["error"].as_str(),
            body["error_description"].as_str()
        ),
        (
            400,
            Some("invalid_request"),
            Some("refresh_token not found")
        )
    );
}

#[tokio::test]
async fn pkce_and_expiry() {
    let lms = SandboxLms::start();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let pkce = [
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    let code = code_for(&lms, 43, &pkce).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://tool.example/cb"),
        ("code_verifier", "wrong"),
    ];
    form.extend(CLIENT);
    assert_eq!(token_call(&lms, &form).await.1["error"], "invalid_grant");
    let code = code_for(&lms, 43, &pkce).await;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", "https://tool.example/cb"),
        ("code_verifier", verifier),
    ];
    form.extend(CLIENT);
    let (status, body, _) = token_call(&lms, &form).await;
    assert_eq!(status, 200);
    let access = body["access_token"].as_str().unwrap().to_string();

    lms.admin("expire", json!({"access_token": access})).await;
    let r = client()
        .get(format!("{}/api/v1/users/self", lms.origin))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["message"],
        "Expired access token."
    );
}

#[tokio::test]
async fn client_credentials_for_lti_services() {
    let lms = SandboxLms::start();
    let pem = lms_proxy::lti_keys::generate_pem(2048).unwrap();
    let key = lms_proxy::lti_keys::SigningKey::from_pem(pem.as_bytes()).unwrap();
    lms.admin("lti", json!({"jwks": {"keys": [key.jwk()]}}))
        .await;
    let keys = lms_proxy::lti_keys::SigningKeys::new(vec![key]).unwrap();
    let token_url = format!("{}/login/oauth2/token", lms.origin);
    let assertion = |claims: Value| keys.sign(&claims).unwrap();
    let claims = |jti: &str, iat: i64| json!({"iss":"10000000000001","sub":"10000000000001","aud":token_url,"iat":iat,"exp":now() + 300,"jti":jti});
    let ask = |assertion: String| {
        let lms = &lms;
        async move {
            token_call(
                lms,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    (
                        "scope",
                        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
                    ),
                ],
            )
            .await
        }
    };
    let (status, body, _) = ask(assertion(claims("j1", now()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"],
        "https://purl.imsglobal.org/spec/lti-ags/scope/score"
    );
    // A jti seen before, an iat too old or too far ahead, another audience, a forged
    // signature: each refused.
    assert_eq!(ask(assertion(claims("j1", now()))).await.0, 400);
    assert_eq!(ask(assertion(claims("j2", now() - 400))).await.0, 400);
    assert_eq!(ask(assertion(claims("j3", now() + 120))).await.0, 400);
    let mut elsewhere = claims("j4", now());
    elsewhere["aud"] = Value::from("https://other.example.edu/login/oauth2/token");
    assert_eq!(ask(assertion(elsewhere)).await.0, 401);
    let good = assertion(claims("j5", now()));
    let forged = format!("{}x", &good[..good.len() - 1]);
    assert_eq!(ask(forged).await.0, 401);
    assert_eq!(lms.stats().await["client_credentials"], 6);
    assert_eq!(lms.stats().await["client_credentials_refused"], 5);
}
