//! Micro-benchmarks of what every proxied request pays for: the tool JWT check (first time and
//! cached, HS256 and RS256), the token lookup on a cache hit, rewriting a five-rel Canvas
//! `Link` header, and matching a route among 50. They report numbers and never fail.
//!
//! `cargo bench --bench hot_path`

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use lms_proxy::config::{Config, Upstream};
use lms_proxy::crypto::Crypto;
use lms_proxy::expiry::now_unix;
use lms_proxy::identity::ToolAuth;
use lms_proxy::rewrite::Rewriter;
use lms_proxy::routes::RouteTable;
use lms_proxy::store::SqliteStore;
use lms_proxy::tokens::{TokenRecord, Tokens};
use lms_proxy::types::{AccessToken, PlatformId, RefreshToken, TokenKey, ToolId, UserKey};

const SECRET: &str = "bench-secret-bench-secret-bench-secret";
const PUBLIC_URL: &str = "https://proxy.example.edu";

fn main() {
    divan::main();
}

fn config() -> Config {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/keys");
    let mut text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
key_env = "KEY"

[[platforms]]
id = "canvas"
kind = "canvas"
base_url = "https://canvas.example.edu"
client_id = "1"
client_secret_env = "SECRET"

[[tools]]
id = "hs"
secret_env = "SECRET"
platforms = ["canvas"]

[[tools]]
id = "rs"
public_key_file = "{}"
platforms = ["canvas"]
"#,
        keys.join("rs256-public.pem").display()
    );
    for i in 0..49 {
        text.push_str(&format!(
            "\n[[routes]]\nprefix = \"/tenant-{i}/canvas\"\nplatform = \"canvas\"\n"
        ));
    }
    text.push_str("\n[[routes]]\nprefix = \"/canvas\"\nplatform = \"canvas\"\n");
    let env = |name: &str| match name {
        "KEY" => Some("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".to_string()),
        "SECRET" => Some(SECRET.to_string()),
        _ => None,
    };
    match Config::parse(&text, Path::new("."), &env) {
        Ok(config) => config,
        Err(e) => panic!("bench config: {e}"),
    }
}

fn jwt(tool: &str, user: &str) -> String {
    let now = now_unix();
    let claims = serde_json::json!({"iss": tool, "sub": user, "aud": PUBLIC_URL, "iat": now, "exp": now + 3600});
    let result = if tool == "rs" {
        let pem = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/keys/rs256-private.pem"),
        )
        .unwrap();
        encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
    } else {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
    };
    result.unwrap()
}

/// Every call sees a JWT it has not verified before (a fresh `sub` per token).
#[divan::bench(args = ["hs", "rs"], sample_count = 30, sample_size = 20)]
fn jwt_first_check(bencher: divan::Bencher, tool: &str) {
    let auth = ToolAuth::new(&config());
    let mut n = 0u64;
    bencher
        .with_inputs(|| {
            n += 1;
            format!("Bearer {}", jwt(tool, &format!("user-{n}")))
        })
        .bench_local_refs(|header| {
            auth.authenticate(Some(header.as_bytes()), None, now_unix())
                .is_ok()
        });
}

/// The same JWT again: the verified result is cached by the token's hash.
#[divan::bench(args = ["hs", "rs"])]
fn jwt_cached_check(bencher: divan::Bencher, tool: &str) {
    let auth = ToolAuth::new(&config());
    let header = format!("Bearer {}", jwt(tool, "user"));
    let now = now_unix();
    assert!(auth
        .authenticate(Some(header.as_bytes()), None, now)
        .is_ok());
    bencher.bench_local(|| {
        auth.authenticate(Some(divan::black_box(header.as_bytes())), None, now)
            .is_ok()
    });
}

#[divan::bench]
fn token_lookup_cache_hit(bencher: divan::Bencher) {
    let config = config();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();
    let tokens = Tokens::new(
        Arc::new(store),
        Arc::new(Crypto::new(&config.server.master_key)),
        &config.tokens,
    );
    let key = TokenKey::new(
        PlatformId::new("canvas"),
        ToolId::new("hs"),
        UserKey::new("user-1"),
    );
    let record = TokenRecord {
        access_token: AccessToken::new("a".repeat(64)),
        refresh_token: Some(RefreshToken::new("r".repeat(64))),
        expires_at: Some(now_unix() + 3600),
        lms_user_id: Some("42".into()),
        obtained_at: now_unix(),
    };
    rt.block_on(tokens.save(key.clone(), record)).unwrap();
    bencher.bench_local(|| {
        rt.block_on(tokens.get(divan::black_box(&key)))
            .map(|l| l.cache_hit)
    });
}

const LINK: &str = "<https://canvas.example.edu/api/v1/courses?page=2&per_page=10>; rel=\"current\",<https://canvas.example.edu/api/v1/courses?page=3&per_page=10>; rel=\"next\",<https://canvas.example.edu/api/v1/courses?page=1&per_page=10>; rel=\"prev\",<https://canvas.example.edu/api/v1/courses?page=1&per_page=10>; rel=\"first\",<https://canvas.example.edu/api/v1/courses?page=9&per_page=10>; rel=\"last\"";

#[divan::bench]
fn link_rewrite_five_rels(bencher: divan::Bencher) {
    let upstream =
        Upstream::from_base_url(&url::Url::parse("https://canvas.example.edu").unwrap()).unwrap();
    let rewriter = Rewriter {
        upstream: &upstream,
        public_base: "https://proxy.example.edu/canvas",
    };
    bencher.bench_local(|| rewriter.link(divan::black_box(LINK)));
}

/// The worst case: the matching route is the shortest prefix, tried last.
#[divan::bench]
fn route_match_among_50(bencher: divan::Bencher) {
    let table = RouteTable::new(&config());
    bencher.bench_local(|| {
        table
            .find(
                divan::black_box(Some("proxy.example.edu")),
                divan::black_box("/canvas/api/v1/courses/7/assignments"),
            )
            .map(|m| m.rest.len())
    });
}

/// A Brightspace ObjectListPage of `members` classlist entries with its `Next` on the LMS.
fn object_list_page(members: usize) -> Vec<u8> {
    let objects: Vec<String> = (0..members)
        .map(|i| {
            format!(
                r#"{{"Identifier":"{}","ProfileIdentifier":"p{i}","DisplayName":"Student {i}","Username":"s{i}","OrgDefinedId":"{i:08}","Email":"s{i}@school.example.edu","FirstName":"Stu","LastName":"Dent {i}","RoleId":110,"LastAccessed":"2026-11-29T10:00:00.000Z","IsOnline":false,"ClasslistRoleDisplayName":"Student"}}"#,
                1000 + i
            )
        })
        .collect();
    format!(
        r#"{{"Objects":[{}],"Next":"https://school.brightspace.com/d2l/api/le/1.67/6606/classlist/paged/?bookmark={members}"}}"#,
        objects.join(",")
    )
    .into_bytes()
}

/// The cost of rewriting `Next` in a Brightspace page: one scan of the body and one copy.
#[divan::bench(args = [10, 100, 1000])]
fn next_rewrite_object_list_page(bencher: divan::Bencher, members: usize) {
    let upstream =
        Upstream::from_base_url(&url::Url::parse("https://school.brightspace.com").unwrap())
            .unwrap();
    let rewriter = Rewriter {
        upstream: &upstream,
        public_base: "https://proxy.example.edu/d2l",
    };
    let body = object_list_page(members);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench_local(|| {
            lms_proxy::body_rewrite::rewrite_field(divan::black_box(&body), "Next", &rewriter)
        });
}
