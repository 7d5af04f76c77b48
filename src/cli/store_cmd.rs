//! `lms-proxy store copy`: moves every grant between stores, sealed bytes as they are (the
//! master key stays the same), so a campus that outgrows one machine moves from SQLite to
//! PostgreSQL, or back, without asking any user to consent again. Running it twice changes
//! nothing more: each grant is written over its copy.

use std::path::PathBuf;

use clap::Subcommand;

use crate::config::{store_url, PostgresSettings, StoreConfig, StoreUrl};
use crate::store;
use crate::types::Secret;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy every grant from one store to another (idempotent).
    Copy {
        /// sqlite://PATH (relative to the current folder) or postgres://USER@HOST/DB?sslmode=...
        #[arg(long, value_name = "URL")]
        from: String,
        /// Where to: the same forms as --from. Passwords come from PGPASSWORD or ~/.pgpass.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub fn run(cmd: StoreCommand) -> Result<(), String> {
    match cmd {
        StoreCommand::Copy { from, to } => {
            let source = store_config(&from, "--from")?;
            let target = store_config(&to, "--to")?;
            let copied = super::block_on(async {
                let source = store::open(&source)
                    .await
                    .map_err(|e| format!("error: --from: {e}"))?;
                let target = store::open(&target)
                    .await
                    .map_err(|e| format!("error: --to: {e}"))?;
                let rows = source
                    .grants
                    .export()
                    .await
                    .map_err(|e| format!("error: --from: {e}"))?;
                let count = rows.len();
                target
                    .grants
                    .put_all(rows)
                    .await
                    .map_err(|e| format!("error: nothing copied: --to: {e}"))?;
                Ok::<_, String>(count)
            })??;
            println!(
                "copied {} from {} to {}",
                super::count(copied, "grant"),
                describe(&from),
                describe(&to)
            );
            Ok(())
        }
    }
}

fn store_config(url: &str, flag: &str) -> Result<StoreConfig, String> {
    match store_url(url, false) {
        Ok(StoreUrl::Sqlite(path)) => Ok(StoreConfig::Sqlite(PathBuf::from(path))),
        Ok(StoreUrl::Postgres { .. }) => Ok(StoreConfig::Postgres(PostgresSettings {
            url: Secret::new(url),
            ca_file: None,
        })),
        Err(problem) => Err(format!(
            "error: {flag} {}",
            problem.replace(
                "put the URL in an environment variable and name it in store.url_env",
                "give it in PGPASSWORD or ~/.pgpass instead"
            )
        )),
    }
}

/// The URL without anything secret, for the summary line.
fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.scheme().starts_with("postgres") => {
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
