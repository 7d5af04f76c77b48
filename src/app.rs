//! Everything a request needs, built once at start and shared by every worker thread.

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::Crypto;
use crate::identity::ToolAuth;
use crate::routes::RouteTable;
use crate::store::{self, StoreError};
use crate::tokens::Tokens;

pub struct App {
    pub config: Arc<Config>,
    pub routes: RouteTable,
    pub auth: ToolAuth,
    pub tokens: Tokens,
    pub crypto: Arc<Crypto>,
}

impl App {
    pub async fn new(config: Config) -> Result<Self, StoreError> {
        let crypto = Arc::new(Crypto::new(&config.server.master_key));
        let store = store::open(&config.store).await?;
        Ok(Self {
            routes: RouteTable::new(&config),
            auth: ToolAuth::new(&config),
            tokens: Tokens::new(store, Arc::clone(&crypto), &config.tokens),
            crypto,
            config: Arc::new(config),
        })
    }
}
