//! HTTP clients of the network: TLS 1.3 with the caller's credential, only `https://` peers,
//! the network CA as the only trust anchor, and optionally the party the server must be.

use std::time::Duration;

use identity::party::Party;

use crate::credential::{Credential, Trust};
use crate::error::{Error, Result};

/// A reqwest client presenting `cred`, trusting `trust`, accepting only a server that is
/// `expect` (if given), refusing plain `http://` URLs.
pub fn client(cred: &Credential, trust: &Trust, expect: Option<Party>) -> Result<reqwest::Client> {
    let tls = crate::tls::client_config(cred, trust, expect)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(10))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| Error::Tls(e.to_string()))
}

/// Refuses a peer URL that is not `https://` (links between parties are never plain).
pub fn require_https(url: &str) -> Result<()> {
    if url.starts_with("https://") {
        Ok(())
    } else {
        Err(Error::Tls(format!("{url:?}: links between parties are https:// only (mutual TLS)")))
    }
}
