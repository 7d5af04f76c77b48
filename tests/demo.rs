//! `lms-sandbox demo --kind ...` for every kind: the printed steps work as printed. The test
//! reads the tool JWT and the URLs from the demo's own output and plays the browser the way
//! its curl lines do.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

/// A running demo and the lines it printed up to "Stop with Ctrl-C".
struct Demo {
    child: Child,
    text: String,
}

impl Demo {
    fn start(kind: &str) -> Demo {
        let port = free_port();
        release_port(port);
        let mut child = Command::new(sandbox_bin())
            .args(["demo", "--kind", kind, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut text = String::new();
        // Bounded: the demo prints its steps at once or exits.
        for line in BufReader::new(stdout).lines().take(200) {
            let line = line.expect("line");
            text.push_str(&line);
            text.push('\n');
            if line.contains("Stop with Ctrl-C") {
                break;
            }
        }
        assert!(text.contains("Stop with Ctrl-C"), "demo printed:\n{text}");
        Demo { child, text }
    }

    /// The first printed line containing `needle`, trimmed.
    fn line(&self, needle: &str) -> &str {
        self.text
            .lines()
            .find(|l| l.contains(needle))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", self.text))
    }

    fn token(&self) -> String {
        self.line("TOKEN='")
            .trim_start_matches("TOKEN='")
            .trim_end_matches('\'')
            .to_string()
    }

    /// The URL at the end of step 1's `curl -i ... URL`.
    fn me_url(&self) -> String {
        self.line("curl -i -H")
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    }

    /// The sandbox's origin from the header lines.
    fn sandbox(&self) -> String {
        self.line("sandbox LMS (")
            .rsplit(' ')
            .next()
            .unwrap()
            .to_string()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn every_kind_of_demo_connects_ada_as_its_steps_say() {
    for kind in ["canvas", "brightspace", "blackboard", "oauth2"] {
        let demo = Demo::start(kind);
        let token = demo.token();
        let me = demo.me_url();
        // The steps are printed as the proxy starts; a person reading them gives it time.
        let origin = url::Url::parse(&me).unwrap().origin().ascii_serialization();
        let mut up = false;
        for _ in 0..100 {
            if let Ok(r) = client().get(format!("{origin}/healthz")).send().await {
                up = r.status() == 200;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(up, "{kind}: the demo's proxy never answered");

        // Step 1: not connected yet.
        let r = client().get(&me).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 401, "{kind}");
        let start = json_of(r).await["authorize_url"]
            .as_str()
            .expect("authorize_url")
            .to_string();
        // Step 2: the start URL leads to the sandbox; its confirm step with Ada's id.
        let consent = begin_consent(&start).await;
        assert!(
            consent.authorize.as_str().starts_with(&demo.sandbox()),
            "{kind}: {}",
            consent.authorize
        );
        // No return_to: the callback itself says so to the person.
        let done = consent.complete(42).await;
        assert_eq!(done.status(), 200, "{kind}");
        assert!(done.text().await.unwrap().contains("Connected"), "{kind}");

        // Step 3: the same call now answers as Ada.
        let r = client().get(&me).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{kind}");
        let body = r.text().await.unwrap();
        assert!(body.contains("42"), "{kind}: {body}");
    }
}
