//! lms-proxy: call an LMS REST API as one of its users, without the tool ever holding the
//! user's OAuth tokens. README.md has the contract; docs/design.md the why.
//!
//! Data flows one way: `config` -> (`provider`, `routes`, `identity`, `lifecycle` -> `tokens`
//! -> `store`, `crypto`) -> `admission` -> `proxy`. Lower modules never import `proxy`. The
//! sandbox LMS and the demo are the `lms-sandbox` crate's, outside this library's binary.

pub mod admission;
pub mod app;
pub mod backoff;
pub mod body_rewrite;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod discovery;
pub mod errors;
pub mod expiry;
pub mod head_deadline;
pub mod http;
pub mod identity;
pub mod lifecycle;
pub mod lms_http;
pub mod logging;
pub mod lti_keys;
pub mod metrics;
pub mod oauth;
pub mod own_paths;
pub mod percent;
pub mod provider;
pub mod proxy;
pub mod rewrite;
pub mod routes;
pub mod server;
pub mod service_tokens;
pub mod store;
pub mod tickets;
pub mod token_endpoint;
pub mod tokens;
pub mod types;

#[cfg(test)]
mod testing;
