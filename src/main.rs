//! The `lms-proxy` binary: installs the one TLS provider, then hands over to the command line.

use std::process::ExitCode;

fn main() -> ExitCode {
    // One TLS provider for the whole process (pingora's connector and reqwest).
    let _ = rustls::crypto::ring::default_provider().install_default();
    lms_proxy::cli::main()
}
