//! A real PostgreSQL for the tests of several instances: a database of its own per test on
//! the server `LMS_PROXY_TEST_DATABASE_URL` names (`./dev test` starts a throwaway one when it
//! is unset), dropped afterwards; and a relay in front of it that the test can cut, as a
//! database that stops answering looks to the proxy.

use std::sync::{Arc, Mutex};

use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::{free_port, release_port};

/// One database for one test, removed when dropped.
pub struct TestDb {
    admin_url: String,
    pub name: String,
    pub url: String,
}

pub fn server_url() -> String {
    std::env::var("LMS_PROXY_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "LMS_PROXY_TEST_DATABASE_URL is not set: run the tests with ./dev test, which starts \
             a throwaway PostgreSQL, or point it at a server where this role may create databases"
        )
    })
}

impl TestDb {
    pub async fn new() -> Self {
        let admin_url = server_url();
        let name = format!("lmsp_test_{}", &uuid_like()[..16]);
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the test PostgreSQL server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let mut url = url::Url::parse(&admin_url).expect("LMS_PROXY_TEST_DATABASE_URL");
        url.set_path(&format!("/{name}"));
        Self {
            admin_url,
            name,
            url: url.to_string(),
        }
    }

    /// This database's URL through `port` on 127.0.0.1 instead of the server's own address.
    pub fn url_via(&self, port: u16) -> String {
        let mut url = url::Url::parse(&self.url).expect("url");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        url.to_string()
    }

    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }

    /// The server's address, for a relay.
    pub fn server_addr(&self) -> String {
        let url = url::Url::parse(&self.url).expect("url");
        format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Its own thread and runtime: drop may run inside a test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            });
        })
        .join();
    }
}

fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// A TCP relay on 127.0.0.1 to the database server. `cut` closes every connection through it
/// and refuses new ones, as a stopped or unreachable database does; `restore` listens again
/// on the same port.
pub struct Relay {
    pub port: u16,
    target: String,
    accept: Mutex<Option<JoinHandle<()>>>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    pub async fn start(target: String) -> Arc<Self> {
        let port = free_port();
        release_port(port);
        let relay = Arc::new(Self {
            port,
            target,
            accept: Mutex::new(None),
            pipes: Arc::new(Mutex::new(Vec::new())),
        });
        relay.restore().await;
        relay
    }

    pub async fn restore(&self) {
        // The cut listener closes a moment after `cut`, on the runtime.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("relay cannot listen again on {}: {e}", self.port),
            }
        };
        let (target, pipes) = (self.target.clone(), Arc::clone(&self.pipes));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                pipes.lock().unwrap().push(pipe);
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    pub fn cut(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for pipe in self.pipes.lock().unwrap().drain(..) {
            pipe.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}
