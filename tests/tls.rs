//! Upstream TLS: certificates are verified against the platform's `ca_file`, with SNI set to
//! the LMS host name (an empty SNI would switch verification off in pingora).

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: leaf.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

fn tls_sandbox(dir: &std::path::Path, pki: &Pki) -> SandboxLms {
    std::fs::write(dir.join("lms-cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("lms-key.pem"), &pki.key_pem).unwrap();
    let cert = dir.join("lms-cert.pem");
    let key = dir.join("lms-key.pem");
    SandboxLms::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
        "--host",
        "localhost",
    ])
}

async fn issue_over_tls(lms: &SandboxLms, ca_pem: &str) -> String {
    init_tls();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let body: serde_json::Value = client
        .post(format!("{}/__sandbox/tokens", lms.origin))
        .json(&serde_json::json!({"user_id": 43}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn verifies_the_lms_certificate_against_ca_file_with_sni() {
    let files = tempfile::tempdir().unwrap();
    let pki = pki();
    let lms = tls_sandbox(files.path(), &pki);
    assert!(lms.origin.starts_with("https://localhost:"));
    let access = issue_over_tls(&lms, &pki.ca_pem).await;
    let port = lms.origin.rsplit(':').next().unwrap().to_string();

    // Trusted CA, host name matches: the request goes through.
    let setup = Setup::with_platform(&lms.origin, "ca_file = \"ca.pem\"", "");
    std::fs::write(setup.dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    setup.import(
        "quiz",
        &format!("{{\"user\":\"u\",\"access_token\":\"{access}\"}}\n"),
    );
    let proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "u");
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 200, "{}", proxy.log_text());
    assert_eq!(json_of(r).await["id"], 43);
    drop(proxy);

    // Same CA, but the LMS is addressed by IP: the certificate does not name it.
    let by_ip = format!("https://127.0.0.1:{port}");
    let setup = Setup::with_platform(&by_ip, "ca_file = \"ca.pem\"", "");
    std::fs::write(setup.dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
    setup.import(
        "quiz",
        &format!("{{\"user\":\"u\",\"access_token\":\"{access}\"}}\n"),
    );
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "u");
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 502);
    assert_eq!(json_of(r).await["error"], "upstream_unavailable");
}

#[tokio::test]
async fn without_ca_file_an_unknown_ca_is_refused() {
    let files = tempfile::tempdir().unwrap();
    let pki = pki();
    let lms = tls_sandbox(files.path(), &pki);
    let access = issue_over_tls(&lms, &pki.ca_pem).await;
    let setup = Setup::new(&lms.origin, "");
    setup.import(
        "quiz",
        &format!("{{\"user\":\"u\",\"access_token\":\"{access}\"}}\n"),
    );
    let _proxy = setup.start_proxy();
    let jwt = setup.mint("quiz", "u");
    let r = setup.get_as(&jwt, "/canvas/api/v1/users/self").await;
    assert_eq!(r.status(), 502);
}

#[test]
fn a_bad_ca_file_is_a_config_error() {
    let setup = Setup::with_platform("https://localhost:1", "ca_file = \"ca.pem\"", "");
    std::fs::write(setup.dir.path().join("ca.pem"), "not a certificate").unwrap();
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("platforms[0].ca_file:"));
}
