//! Tickets: proxy-sealed, short-lived credentials that let a browser start the consent flow
//! for one (platform, tool, user) without carrying the tool's JWT in a URL.
//!
//! A ticket names everything the callback needs to check, so the proxy keeps no state until
//! the browser actually arrives. It is sealed (AES-GCM), not only signed: a consent URL passes
//! through browsers, histories and the LMS's logs, and must not reveal the user, the tool or
//! the return address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::crypto::{random_token, Crypto};
use crate::types::{PlatformId, ToolId, UserKey};

/// Ten minutes, like the OAuth state it turns into.
pub const TICKET_LIFETIME_SECS: i64 = 600;
/// Associated data: a ticket opens only as a ticket, never as a sealed token row or state.
const PURPOSE: &[u8] = b"lms-proxy ticket v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Random id; the start endpoint remembers used ids so a ticket works once.
    pub id: String,
    pub platform: PlatformId,
    pub tool: ToolId,
    pub user: UserKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lms_user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_to: Option<String>,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("the ticket is not one this proxy issued")]
    Invalid,
    #[error("the ticket has expired; go back to the tool and try again")]
    Expired,
}

impl Ticket {
    pub fn new(
        platform: &PlatformId,
        tool: &ToolId,
        user: &UserKey,
        lms_user_id: Option<&str>,
        return_to: Option<&str>,
        now: i64,
    ) -> Self {
        Self {
            id: random_token(),
            platform: platform.clone(),
            tool: tool.clone(),
            user: user.clone(),
            lms_user_id: lms_user_id.map(str::to_string),
            return_to: return_to.map(str::to_string),
            exp: now + TICKET_LIFETIME_SECS,
        }
    }

    pub fn seal(&self, crypto: &Crypto) -> String {
        URL_SAFE_NO_PAD.encode(crypto.seal(&serde_json::to_vec(self).unwrap_or_default(), PURPOSE))
    }

    pub fn open(crypto: &Crypto, sealed: &str, now: i64) -> Result<Self, TicketError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| TicketError::Invalid)?;
        let payload = crypto
            .open(&bytes, PURPOSE)
            .map_err(|_| TicketError::Invalid)?;
        let ticket: Ticket = serde_json::from_slice(&payload).map_err(|_| TicketError::Invalid)?;
        if ticket.exp <= now {
            return Err(TicketError::Expired);
        }
        Ok(ticket)
    }

    /// `public_url/oauth/start/{platform}?ticket=...`: what 401 bodies and status answers hand out.
    pub fn start_url(&self, crypto: &Crypto, public_url: &str) -> String {
        format!(
            "{public_url}/oauth/start/{}?ticket={}",
            self.platform,
            self.seal(crypto)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MasterKey;

    #[test]
    fn round_trip_expiry_and_forgery() {
        let crypto = Crypto::new(&MasterKey([3; 32]));
        let t = Ticket::new(
            &PlatformId::new("canvas"),
            &ToolId::new("quiz"),
            &UserKey::new("user-key-one"),
            Some("4242424242"),
            None,
            1000,
        );
        let signed = t.seal(&crypto);
        assert_eq!(Ticket::open(&crypto, &signed, 1000).unwrap(), t);
        assert_eq!(
            Ticket::open(&crypto, &signed, 1600),
            Err(TicketError::Expired)
        );
        let other = Crypto::new(&MasterKey([4; 32]));
        assert_eq!(
            Ticket::open(&other, &signed, 1000),
            Err(TicketError::Invalid)
        );
        let url = t.start_url(&crypto, "https://p.example.edu");
        assert!(url.starts_with("https://p.example.edu/oauth/start/canvas?ticket="));
        // Sealed: nothing of the ticket can be read from the URL (parts long enough that
        // random ciphertext never holds them by chance).
        let sealed = URL_SAFE_NO_PAD.decode(&signed).unwrap();
        for part in [&b"user-key-one"[..], b"4242424242", b"\"canvas\""] {
            assert!(!sealed.windows(part.len()).any(|w| w == part));
        }
    }
}
