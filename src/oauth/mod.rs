//! The OAuth2 authorization-code flow, completed by the proxy itself: the browser-facing
//! start and callback, the tool-facing status/access-token/revoke endpoints, and the token
//! endpoint client they share.

pub mod browser;
pub mod client;
pub mod return_to;
pub mod state;
pub mod tool_api;
