//! Everything a request needs, built once at start and shared by every worker thread.
//!
//! Its parts are reached through one accessor each, never through each other: what a handler
//! may do with the store is what the port it is handed allows.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Crypto;
use crate::identity::ToolAuth;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::service_tokens::ServiceTokens;
use crate::store::{self, Change, NonceStore, Readiness, Stores};
use crate::token_endpoint::OAuthClients;
use crate::tokens::Tokens;

pub struct App {
    config: Arc<Config>,
    routes: RouteTable,
    auth: ToolAuth,
    crypto: Arc<Crypto>,
    lifecycle: Lifecycle,
    service_tokens: ServiceTokens,
    oauth: Arc<OAuthClients>,
    nonces: Arc<dyn NonceStore>,
    readiness: Arc<dyn Readiness>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Client(String),
}

impl App {
    pub async fn new(config: Config) -> Result<Self, AppError> {
        let stores = store::open(&config.store).await?;
        Self::with_stores(config, stores)
    }

    /// The app over stores the caller opened: benchmarks and tests choose their own.
    pub fn with_stores(config: Config, stores: Stores) -> Result<Self, AppError> {
        let crypto = Arc::new(Crypto::new(&config.server.master_key));
        let tokens = Tokens::new(stores.grants, Arc::clone(&crypto), &config.tokens);
        if let Some(changes) = stores.changes {
            let cache = tokens.clone();
            changes.follow(move |change| {
                let cache = cache.clone();
                async move {
                    match change {
                        Change::Grant(key) => cache.forget_cached(&key).await,
                        Change::Everything => cache.forget_all_cached(),
                    }
                }
            });
        }
        let oauth = Arc::new(OAuthClients::new(&config).map_err(AppError::Client)?);
        let metrics = Arc::new(Metrics::new(
            config.platforms.iter().map(|p| p.id.clone()).collect(),
        ));
        let service_tokens = ServiceTokens::new(
            tokens.clone(),
            Arc::clone(&stores.locks),
            Arc::clone(&oauth) as _,
            config.lti_keys.clone(),
            &config.tokens,
        );
        let lifecycle = Lifecycle::new(
            tokens,
            stores.locks,
            Arc::clone(&oauth) as _,
            &config.tokens,
            Arc::clone(&metrics),
        );
        Ok(Self {
            routes: RouteTable::new(&config),
            auth: ToolAuth::new(&config),
            lifecycle,
            service_tokens,
            oauth,
            nonces: stores.nonces,
            readiness: stores.readiness,
            metrics,
            crypto,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn auth(&self) -> &ToolAuth {
        &self.auth
    }

    pub fn crypto(&self) -> &Crypto {
        &self.crypto
    }

    /// Users' grants: lookups, refreshes, consent and forgetting.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Platforms' LTI service tokens.
    pub fn service_tokens(&self) -> &ServiceTokens {
        &self.service_tokens
    }

    /// The LMS token endpoints, for the consent flow: code exchange, who-am-I, revocation.
    pub fn oauth(&self) -> &OAuthClients {
        &self.oauth
    }

    /// Single-use OAuth state and tickets.
    pub fn nonces(&self) -> &dyn NonceStore {
        self.nonces.as_ref()
    }

    pub fn readiness(&self) -> &dyn Readiness {
        self.readiness.as_ref()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}
