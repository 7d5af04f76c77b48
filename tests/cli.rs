//! The command line against real files: check, mint, tokens import/list/delete.

mod common;

use common::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn check_accepts_the_test_config_and_the_shipped_example() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK (2 platforms, 2 routes, 3 tools)"));

    // The annotated example must stay valid.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/lms-proxy.toml");
    let env = std::collections::HashMap::from([
        ("LMS_PROXY_KEY".to_string(), MASTER_KEY.to_string()),
        ("CANVAS_CLIENT_SECRET".to_string(), "x".to_string()),
        ("QUIZ_TOOL_SECRET".to_string(), TOOL_SECRET.to_string()),
    ]);
    let out = run(
        BIN,
        &["check".into(), "-c".into(), example.into()],
        &env,
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_lists_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "nowhere"
public_url = "https://proxy.example.edu/"
key_env = "MISSING_KEY"

[[platforms]]
id = "Canvas!"
kind = "moodle"
base_url = "ftp://canvas"
client_id = ""
client_secret_env = "NOT_SET"

[[routes]]
prefix = "/oauth/x"
platform = "nope"
allow = ["FETCH"]

[[tools]]
id = "quiz"
secret_env = "SHORT_SECRET"
platforms = ["nope"]
return_to = ["not a url"]
"#,
    )
    .unwrap();
    let env = std::collections::HashMap::from([("SHORT_SECRET".to_string(), "short".to_string())]);
    let out = run(
        BIN,
        &["check".into(), "-c".into(), path.to_string_lossy().into()],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "server.listen:",
        "server.public_url:",
        "server.key_env: environment variable MISSING_KEY is not set",
        "platforms[0].id:",
        "platforms[0].kind:",
        "platforms[0].base_url:",
        "platforms[0].client_id:",
        "platforms[0].client_secret_env: environment variable NOT_SET is not set",
        "routes[0].prefix:",
        "routes[0].platform:",
        "routes[0].allow[0]:",
        "tools[0].secret_env: SHORT_SECRET holds 5 bytes",
        "tools[0].platforms[0]:",
        "tools[0].return_to[0]:",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("short"),
        "a secret's value was printed:\n{err}"
    );
}

#[test]
fn unknown_keys_and_bad_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\npublic_url = \"http://x\"\nkey_env = \"K\"\nlisten_port = 3\n").unwrap();
    let out = run(
        BIN,
        &["check".into(), "-c".into(), path.to_string_lossy().into()],
        &Default::default(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("server.listen_port: unknown key; did you mean `listen`?"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("line 5"), "{}", stderr(&out));

    let out = run(BIN, &["check".into()], &Default::default(), None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(BIN, &["frobnicate".into()], &Default::default(), None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(
        BIN,
        &["check".into(), "-c".into(), "/no/such/file.toml".into()],
        &Default::default(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /no/such/file.toml"));
}

#[test]
fn mint_prints_a_jwt_with_the_contract_claims() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    let out = setup.cli(
        &[
            "mint",
            "-c",
            "{config}",
            "--tool",
            "quiz",
            "--user",
            "u-1",
            "--lms-user-id",
            "42",
            "--ttl",
            "600",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let jwt = stdout(&out).trim().to_string();
    assert_eq!(jwt.lines().count(), 1);
    let claims = jwt_claims(&jwt);
    assert_eq!(claims["iss"], "quiz");
    assert_eq!(claims["sub"], "u-1");
    assert_eq!(claims["aud"], setup.url(""));
    assert_eq!(claims["lms_user_id"], 42);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );

    let out = setup.cli(
        &["mint", "-c", "{config}", "--tool", "ghost", "--user", "u"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--tool"));
    let out = setup.cli(
        &[
            "mint", "-c", "{config}", "--tool", "quiz", "--user", "u", "--ttl", "999999",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--ttl"));
}

#[test]
fn tokens_import_list_delete() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    setup.import(
        "quiz",
        "{\"user\":\"alice\",\"access_token\":\"plain-access-alice\",\"refresh_token\":\"plain-refresh-alice\",\"expires_in\":3600,\"lms_user_id\":42}\n\
         {\"user\":\"bob\",\"access_token\":\"plain-access-bob\",\"expires_at\":\"2030-01-01T00:00:00Z\"}\n",
    );
    let out = setup.cli(&["tokens", "list", "-c", "{config}", "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["user"], "alice");
    assert_eq!(rows[0]["lms_user_id"], "42");
    assert_eq!(rows[1]["expires_at"], "2030-01-01T00:00:00Z");
    assert!(!stdout(&out).contains("plain-access"));

    // Sealed at rest: no token bytes in the database files.
    for suffix in ["", "-wal"] {
        let mut path = setup.db_path().into_os_string();
        path.push(suffix);
        let bytes = std::fs::read(&path).unwrap_or_default();
        for secret in [
            "plain-access-alice",
            "plain-refresh-alice",
            "plain-access-bob",
        ] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {path:?}"
            );
        }
    }

    let delete_bob = || {
        setup.cli(
            &[
                "tokens",
                "delete",
                "-c",
                "{config}",
                "--platform",
                "canvas",
                "--tool",
                "quiz",
                "--user",
                "bob",
            ],
            None,
        )
    };
    let out = delete_bob();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = delete_bob();
    assert_eq!(out.status.code(), Some(1));
    let out = setup.cli(&["tokens", "list", "-c", "{config}"], None);
    assert!(stdout(&out).contains("alice") && !stdout(&out).contains("bob"));
}

#[test]
fn a_bad_import_line_is_reported_by_number_and_nothing_is_written() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    let out = setup.cli(
        &[
            "tokens",
            "import",
            "-c",
            "{config}",
            "--platform",
            "canvas",
            "--tool",
            "quiz",
        ],
        Some(
            "{\"user\":\"alice\",\"access_token\":\"a\"}\n\
             {\"user\":\"bob\"}\n\
             {\"user\":\"carol\",\"access_token\":\"c\",\"expires_in\":\"soon-secret-ish\"}\n",
        ),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 2:") && err.contains("line 3:"), "{err}");
    assert!(!err.contains("line 1:"));
    assert!(!err.contains("soon-secret-ish"));
    let out = setup.cli(&["tokens", "list", "-c", "{config}", "--json"], None);
    assert_eq!(stdout(&out).trim(), "", "something was written");

    // A tool that may not use the platform is refused before anything is read.
    let out = setup.cli(
        &[
            "tokens",
            "import",
            "-c",
            "{config}",
            "--platform",
            "canvas",
            "--tool",
            "nowhere",
        ],
        Some("{\"user\":\"alice\",\"access_token\":\"a\"}\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("may not use platform canvas"));
}

/// Runs `lms-proxy run` and waits at most 20 s for it to end on its own.
fn run_until_exit(setup: &Setup) -> Option<std::process::Output> {
    release_port(setup.port);
    let mut child = std::process::Command::new(BIN)
        .args(["run", "-c"])
        .arg(setup.config_path())
        .envs(&setup.env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `run` with `key` set to a port another process holds ends at once, naming the key.
fn a_taken_port_ends_run(key: &str, edit: impl FnOnce(&str, &Setup, u16) -> String) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let setup = Setup::new("http://127.0.0.1:1", "");
    setup.edit_config(|text| edit(text, &setup, port));
    let out = run_until_exit(&setup).expect("run kept waiting for a taken port");
    assert_eq!(out.status.code(), Some(1));
    let expected = format!("127.0.0.1:{port} is in use ({key}); choose another port");
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
}

#[test]
fn a_listen_port_in_use_ends_run_at_once() {
    a_taken_port_ends_run("server.listen", |text, setup, port| {
        text.replace(
            &format!("127.0.0.1:{}\"\npublic", setup.port),
            &format!("127.0.0.1:{port}\"\npublic"),
        )
    });
}

#[test]
fn a_metrics_port_in_use_ends_run_at_once() {
    a_taken_port_ends_run("server.metrics_listen", |text, _, port| {
        text.replace(
            "threads = 2\n",
            &format!("threads = 2\nmetrics_listen = \"127.0.0.1:{port}\"\n"),
        )
    });
}

#[test]
fn check_refuses_bad_hosts_and_duplicate_host_routes() {
    let setup = Setup::new(
        "http://127.0.0.1:1",
        r#"
[[routes]]
host = "canvas.proxy.test"
platform = "canvas"

[[routes]]
host = "CANVAS.proxy.test"
prefix = "/"
platform = "canvas"

[[routes]]
host = "canvas.proxy.test:8080"
platform = "canvas"

[[routes]]
platform = "canvas"
"#,
    );
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    for expected in [
        "routes[3].prefix: duplicate route: host \"canvas.proxy.test\" with prefix \"/\"",
        "routes[4].host: \"canvas.proxy.test:8080\" is not a DNS host name",
        "routes[5].prefix: is required (or give the route a host)",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

#[test]
fn tokens_list_lines_up_its_columns_and_check_counts_in_words() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    setup.import(
        "quiz",
        "{\"user\":\"a\",\"access_token\":\"t1\",\"expires_in\":3600}\n{\"user\":\"a-much-longer-user-key\",\"access_token\":\"t2\",\"lms_user_id\":7}\n",
    );
    let out = setup.cli(&["tokens", "list", "-c", "{config}"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Every column starts where its header does.
    for column in ["TOOL", "USER", "LMS_USER_ID", "EXPIRES_AT"] {
        let at = lines[0].find(column).unwrap();
        for line in &lines[1..] {
            assert_eq!(&line[at - 1..at], " ", "{column} misaligned:\n{text}");
            assert_ne!(&line[at..at + 1], " ", "{column} misaligned:\n{text}");
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let one =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/sandbox.toml")).unwrap();
    std::fs::write(dir.path().join("one.toml"), one).unwrap();
    let env = std::collections::HashMap::from([
        ("LMS_PROXY_KEY".to_string(), MASTER_KEY.to_string()),
        ("CANVAS_CLIENT_SECRET".to_string(), "x".to_string()),
        ("QUIZ_TOOL_SECRET".to_string(), TOOL_SECRET.to_string()),
    ]);
    let path = dir.path().join("one.toml").to_string_lossy().into_owned();
    let out = run(BIN, &["check".into(), "-c".into(), path], &env, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("OK (1 platform, 1 route, 1 tool)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_demo_on_a_taken_port_says_how_to_choose_another() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let sandbox = sandbox_bin();
    let out = run(
        sandbox.to_str().unwrap(),
        &["demo".into(), "--listen".into(), addr.clone()],
        &Default::default(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains(&format!("{addr} is in use (--listen)"))
            && text.contains("--listen 127.0.0.1:"),
        "{text}"
    );
    assert!(
        !stdout(&out).contains("TOKEN="),
        "the steps were printed for someone else's server"
    );
}

#[test]
fn check_refuses_a_store_url_that_would_leak_or_travel_in_the_clear() {
    let mut setup = Setup::new("http://127.0.0.1:1", "");
    let check = |setup: &Setup| {
        let out = setup.cli(&["check", "-c", "{config}"], None);
        (out.status.code(), stderr(&out))
    };
    let use_store = |setup: &Setup, store: &str| {
        setup.edit_config(|t| {
            let start = t.find("[store]").unwrap();
            let end = start + t[start..].find("\n\n").unwrap();
            format!("{}{store}{}", &t[..start], &t[end..])
        })
    };
    // A password in the file itself.
    use_store(
        &setup,
        "[store]\nurl = \"postgres://lms:hunter2hunter2@db.example.edu/lms?sslmode=verify-full\"",
    );
    let (code, text) = check(&setup);
    assert_eq!(code, Some(1));
    assert!(text.contains("store.url: holds a password"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    // From the environment: allowed, but not in the clear to another host.
    setup.env.insert(
        "DB_URL".into(),
        "postgres://lms:hunter2hunter2@db.example.edu/lms".into(),
    );
    use_store(&setup, "[store]\nurl_env = \"DB_URL\"");
    let (code, text) = check(&setup);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("store.url_env: sends grants to db.example.edu without TLS"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    setup.env.insert(
        "DB_URL".into(),
        "postgres://lms:hunter2hunter2@db.example.edu/lms?sslmode=verify-full".into(),
    );
    let (code, text) = check(&setup);
    assert_eq!(code, Some(0), "{text}");

    // Both keys, a ca_file without verification, a made-up sslmode.
    use_store(
        &setup,
        "[store]\nurl = \"sqlite://x.db\"\nurl_env = \"DB_URL\"",
    );
    assert!(check(&setup)
        .1
        .contains("store: set url or url_env, not both"));
    std::fs::write(setup.dir.path().join("ca.pem"), "x").unwrap();
    setup.env.insert(
        "DB_URL".into(),
        "postgres://lms@127.0.0.1/lms?sslmode=require".into(),
    );
    use_store(
        &setup,
        "[store]\nurl_env = \"DB_URL\"\nca_file = \"ca.pem\"",
    );
    assert!(check(&setup)
        .1
        .contains("store.ca_file: is used only with sslmode=verify-ca or sslmode=verify-full"));
    setup.env.insert(
        "DB_URL".into(),
        "postgres://lms@127.0.0.1/lms?sslmode=sometimes".into(),
    );
    assert!(check(&setup)
        .1
        .contains("sslmode=\"sometimes\" is not one of"));
}

#[test]
fn check_names_what_each_kind_is_missing() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    // Generic OAuth2 has no endpoints to default to; Brightspace grants nothing without
    // scopes; any kind needs its client secret in the environment.
    setup.add_platform("any", "oauth2", "https://sso.example.edu", "");
    setup.add_platform("d2l", "brightspace", "https://school.brightspace.com", "");
    setup.add_platform("bb", "blackboard", "https://learn.example.edu", "");
    setup.edit_config(|t| {
        let at = t
            .rfind("client_secret_env = \"CANVAS_CLIENT_SECRET\"")
            .unwrap();
        format!(
            "{}client_secret_env = \"BB_SECRET\"{}",
            &t[..at],
            &t[at + "client_secret_env = \"CANVAS_CLIENT_SECRET\"".len()..]
        )
    });
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    for expected in [
        "platforms[2].authorize_url: is required for kind = \"oauth2\"",
        "platforms[2].token_url: is required for kind = \"oauth2\"",
        "platforms[3].scopes: brightspace needs the scopes to ask for",
        "platforms[4].client_secret_env: environment variable BB_SECRET is not set",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn check_refuses_generic_oauth2_keys_where_they_cannot_work() {
    let setup = Setup::new("http://127.0.0.1:1", "");
    setup.add_platform(
        "any",
        "oauth2",
        "https://sso.example.edu",
        "authorize_url = \"https://sso.example.edu/auth\"\ntoken_url = \"https://sso.example.edu/token\"\nuser_id_field = \"email\"\nclient_auth = \"private_key_jwt\"",
    );
    setup.add_platform(
        "d2l",
        "brightspace",
        "https://school.brightspace.com",
        "scopes = [\"core:*:*\"]\nissuer = \"https://auth.brightspace.com\"",
    );
    let out = setup.cli(&["check", "-c", "{config}"], None);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    for expected in [
        "platforms[2].user_id_field: needs `userinfo_url`",
        "platforms[2].client_auth: \"private_key_jwt\" is not one of client_secret_basic, client_secret_post",
        "platforms[3].issuer: only kind = \"oauth2\" takes this",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn the_shipped_lti_sandbox_config_checks_once_its_key_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/sandbox-lti.toml"
    ))
    .unwrap();
    let config = dir.path().join("sandbox-lti.toml");
    std::fs::write(&config, text).unwrap();
    let env = std::collections::HashMap::from([
        ("LMS_PROXY_KEY".to_string(), MASTER_KEY.to_string()),
        ("CANVAS_CLIENT_SECRET".to_string(), "x".to_string()),
        ("QUIZ_TOOL_SECRET".to_string(), TOOL_SECRET.to_string()),
    ]);
    let check = || {
        let path = config.to_string_lossy().into_owned();
        run(BIN, &["check".into(), "-c".into(), path], &env, None)
    };
    // Without the key, check says which file is missing.
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("lti.signing_keys[0]"),
        "{}",
        stderr(&out)
    );

    let key = dir.path().join("lti.pem").to_string_lossy().into_owned();
    let made = run(
        BIN,
        &["keys".into(), "new".into(), "--out".into(), key.clone()],
        &env,
        None,
    );
    assert!(made.status.success(), "{}", stderr(&made));
    assert_eq!(
        stdout(&made).trim().len(),
        43,
        "a SHA-256 thumbprint, base64url"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(
        BIN,
        &["keys".into(), "new".into(), "--out".into(), key],
        &env,
        None,
    );
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing key is never overwritten"
    );

    let out = check();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK (1 platform, 2 routes, 1 tool)"));
}
