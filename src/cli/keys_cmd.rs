//! `lms-proxy keys new`: a signing key for LTI client assertions, written where the operator
//! says with owner-only permissions, its `kid` printed for the LMS side.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::lti_keys::{generate_pem, SigningKey, MIN_BITS};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Write a new RSA private key (PEM, mode 0600) and print its kid.
    New {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Key size in bits.
        #[arg(long, default_value_t = MIN_BITS as u16, value_parser = clap::value_parser!(u16).range(MIN_BITS as i64..=8192))]
        bits: u16,
    },
}

pub fn run(cmd: KeysCommand) -> Result<(), String> {
    match cmd {
        KeysCommand::New { out, bits } => {
            let pem = generate_pem(usize::from(bits)).map_err(|e| format!("error: {e}"))?;
            // Read back as the proxy will read it: the kid printed is the one it publishes.
            let kid = SigningKey::from_pem(pem.as_bytes())
                .map_err(|e| format!("error: {e}"))?
                .kid()
                .to_string();
            write_private(&out, pem.as_bytes())
                .map_err(|e| format!("error: {}: {e}", out.display()))?;
            println!("{kid}");
            Ok(())
        }
    }
}

/// Creates the file with mode 0600 from the start (no window in which others may read it),
/// and refuses one that exists.
fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
