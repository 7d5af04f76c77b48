//! The OAuth2 authorization-code flow, completed by the proxy itself: the browser-facing
//! start and callback, and the tool-facing status/access-token/revoke endpoints. The token
//! endpoint client they share sits lower, in `token_endpoint`, since refreshing uses it too.

pub mod browser;
pub mod return_to;
pub mod state;
pub mod tool_api;
