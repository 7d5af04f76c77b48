//! Everything a request needs, built once at start and shared by every worker thread.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Crypto;
use crate::identity::ToolAuth;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use crate::store;
use crate::token_endpoint::OAuthClients;
use crate::tokens::Tokens;

pub struct App {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub auth: ToolAuth,
    pub crypto: Arc<Crypto>,
    pub lifecycle: Lifecycle,
    pub metrics: Arc<Metrics>,
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
        let crypto = Arc::new(Crypto::new(&config.server.master_key));
        let store = store::open(&config.store).await?;
        let tokens = Tokens::new(store, Arc::clone(&crypto), &config.tokens);
        let oauth = OAuthClients::new(&config).map_err(AppError::Client)?;
        let metrics = Arc::new(Metrics::new(
            config.platforms.iter().map(|p| p.id.clone()).collect(),
        ));
        Ok(Self {
            routes: RouteTable::new(&config),
            auth: ToolAuth::new(&config),
            lifecycle: Lifecycle::new(tokens, oauth, &config.tokens, Arc::clone(&metrics)),
            metrics,
            crypto,
            config: Arc::new(config),
        })
    }

    pub fn tokens(&self) -> &Tokens {
        &self.lifecycle.tokens
    }
}
