//! CSRF tokens: every form carries one, bound to what authenticates the browser (the window's
//! session id, or a console's mutual-TLS party) and to an expiry, MACed with a key that lives
//! only in the process's memory. A post without a valid token for its binding is refused before
//! anything is read from the form, so a page of another site cannot make a signed-in browser act.
//! Pure: callers pass `now`.
#![forbid(clippy::disallowed_methods)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::hmac;

/// The name of the hidden form field (and of the `x-csrf-token` header htmx sends).
pub const FIELD: &str = "csrf";
/// The header htmx requests carry the token in.
pub const HEADER: &str = "x-csrf-token";

/// Why a token was refused (the code is what the refusal page and the log name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfError {
    /// No token in the request.
    Missing,
    /// Not a token of this process for this binding (forged, of another session, or the
    /// process restarted).
    Invalid,
    /// A token of this binding whose time is over.
    Expired,
}

impl CsrfError {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "csrf_missing",
            Self::Invalid => "csrf_invalid",
            Self::Expired => "csrf_expired",
        }
    }
}

/// The process's CSRF key and token lifetime.
pub struct Csrf {
    key: hmac::Key,
    ttl: i64,
}

impl std::fmt::Debug for Csrf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Csrf").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Csrf {
    /// A fresh random key; tokens live `ttl` seconds.
    pub fn new(ttl: i64) -> Self {
        let bytes: [u8; 32] = rand::random();
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, &bytes), ttl }
    }

    fn mac(&self, binding: &str, expiry: i64) -> hmac::Tag {
        let msg = format!("jpki-csrf-v1\n{binding}\n{expiry}");
        hmac::sign(&self.key, msg.as_bytes())
    }

    /// A token for forms shown to `binding` at `now`.
    pub fn token(&self, binding: &str, now: i64) -> String {
        let expiry = now + self.ttl;
        format!("{expiry}.{}", B64.encode(self.mac(binding, expiry).as_ref()))
    }

    /// Checks a token presented by `binding` at `now`.
    pub fn check(&self, binding: &str, token: Option<&str>, now: i64) -> Result<(), CsrfError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(CsrfError::Missing)?;
        let (expiry, mac) = token.split_once('.').ok_or(CsrfError::Invalid)?;
        let expiry: i64 = expiry.parse().map_err(|_| CsrfError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| CsrfError::Invalid)?;
        let msg = format!("jpki-csrf-v1\n{binding}\n{expiry}");
        hmac::verify(&self.key, msg.as_bytes(), &mac).map_err(|_| CsrfError::Invalid)?;
        if now > expiry { Err(CsrfError::Expired) } else { Ok(()) }
    }
}

/// Whether the browser says the request came from another site (`Sec-Fetch-Site: cross-site`
/// or `same-site`, or an `Origin` header naming another origin than `host`). Checked on every
/// post in addition to the token.
///
/// Our pages are served with `Referrer-Policy: no-referrer`, under which Chromium sends
/// `Origin: null` on a page's own form posts; with `Sec-Fetch-Site: same-origin` (a header no
/// page can set) that is a same-origin post.
pub fn cross_site(headers: &axum::http::HeaderMap, host: &str) -> bool {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let fetch_site = get("sec-fetch-site");
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    match get("origin") {
        Some("null") if fetch_site == Some("same-origin") => false,
        Some(o) => o.strip_prefix("https://").is_none_or(|h| !h.eq_ignore_ascii_case(host)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_only_for_its_binding_and_time() {
        let c = Csrf::new(600);
        let t = c.token("session-a", 1000);
        assert_eq!(c.check("session-a", Some(&t), 1500), Ok(()));
        assert_eq!(c.check("session-b", Some(&t), 1500), Err(CsrfError::Invalid));
        assert_eq!(c.check("session-a", Some(&t), 1601), Err(CsrfError::Expired));
        assert_eq!(c.check("session-a", None, 1500), Err(CsrfError::Missing));
        assert_eq!(c.check("session-a", Some(""), 1500), Err(CsrfError::Missing));
        // Moving the expiry forward breaks the MAC.
        let (_, mac) = t.split_once('.').unwrap();
        assert_eq!(c.check("session-a", Some(&format!("99999.{mac}")), 1500), Err(CsrfError::Invalid));
        assert_eq!(c.check("session-a", Some("junk"), 1500), Err(CsrfError::Invalid));
        // Another process's key.
        assert_eq!(Csrf::new(600).check("session-a", Some(&t), 1500), Err(CsrfError::Invalid));
    }

    #[test]
    fn cross_site_posts_are_recognised() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = axum::http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert!(!cross_site(&h(&[("sec-fetch-site", "same-origin")]), "127.0.0.1:8443"));
        assert!(!cross_site(&h(&[("origin", "https://127.0.0.1:8443")]), "127.0.0.1:8443"));
        assert!(!cross_site(&h(&[]), "127.0.0.1:8443"));
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")]), "127.0.0.1:8443"));
        assert!(cross_site(&h(&[("origin", "https://evil.example")]), "127.0.0.1:8443"));
        assert!(cross_site(&h(&[("origin", "http://127.0.0.1:8443")]), "127.0.0.1:8443"));
        assert!(cross_site(&h(&[("origin", "null")]), "127.0.0.1:8443"));
        // A no-referrer page's own form post (Chromium), and the same from another site.
        assert!(!cross_site(&h(&[("origin", "null"), ("sec-fetch-site", "same-origin")]), "127.0.0.1:8443"));
        assert!(cross_site(&h(&[("origin", "null"), ("sec-fetch-site", "cross-site")]), "127.0.0.1:8443"));
    }
}
