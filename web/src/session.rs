//! Browser sessions: a random id in a `__Host-` cookie (Secure, HttpOnly, SameSite=Strict,
//! path `/`, no domain), the session's value in the process's memory only, an idle timeout and
//! an absolute lifetime, and a cap on how many exist at once (a flood of sign-ins cannot grow
//! memory). A restart signs everyone out. Pure except for the id's randomness: callers pass
//! `now`.
#![forbid(clippy::disallowed_methods)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// The session cookie's name (`__Host-`: the browser keeps it only if Secure, path `/` and
/// without a domain).
pub const COOKIE: &str = "__Host-jpki-session";

struct Entry<T> {
    value: Arc<T>,
    created: i64,
    seen: i64,
}

/// The sessions of one process.
pub struct Sessions<T> {
    map: Mutex<HashMap<String, Entry<T>>>,
    idle: i64,
    lifetime: i64,
    cap: usize,
}

impl<T> std::fmt::Debug for Sessions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("idle", &self.idle).field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

impl<T> Sessions<T> {
    /// Sessions that end after `idle` seconds without a request or `lifetime` seconds after
    /// sign-in, at most `cap` at once.
    pub fn new(idle: i64, lifetime: i64, cap: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), idle, lifetime, cap }
    }

    fn live(&self, e: &Entry<T>, now: i64) -> bool {
        now - e.seen <= self.idle && now - e.created <= self.lifetime
    }

    /// Starts a session; `None` if `cap` live sessions exist.
    pub fn create(&self, value: T, now: i64) -> Option<String> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, e| now - e.seen <= self.idle && now - e.created <= self.lifetime);
        if map.len() >= self.cap {
            return None;
        }
        let id = B64.encode(rand::random::<[u8; 32]>());
        map.insert(id.clone(), Entry { value: Arc::new(value), created: now, seen: now });
        Some(id)
    }

    /// The session `id`'s value, if it is live (and marks it used); an expired one is removed.
    pub fn get(&self, id: &str, now: i64) -> Option<Arc<T>> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let live = map.get(id).map(|e| self.live(e, now))?;
        if !live {
            map.remove(id);
            return None;
        }
        let e = map.get_mut(id)?;
        e.seen = now;
        Some(e.value.clone())
    }

    /// Ends a session (sign-out).
    pub fn remove(&self, id: &str) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }

    /// How long a cookie for a new session should live.
    pub fn lifetime(&self) -> i64 {
        self.lifetime
    }
}

/// The `Set-Cookie` value for session `id` (`max_age` 0 clears it).
pub fn cookie_value(id: &str, max_age: i64) -> String {
    format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}")
}

/// The session id in a request's `Cookie` headers, if any.
pub fn session_id(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_too_long_or_too_old() {
        let s = Sessions::new(100, 250, 10);
        let id = s.create("clerk", 0).unwrap();
        assert_eq!(*s.get(&id, 90).unwrap(), "clerk");
        assert_eq!(*s.get(&id, 180).unwrap(), "clerk", "each use restarts the idle time");
        assert!(s.get(&id, 260).is_none(), "past the lifetime");
        assert!(s.get(&id, 0).is_none(), "removed once expired");
        let id = s.create("clerk", 1000).unwrap();
        assert!(s.get(&id, 1101).is_none(), "idle too long");
        assert!(s.get("not-a-session", 0).is_none());
        let id = s.create("clerk", 2000).unwrap();
        s.remove(&id);
        assert!(s.get(&id, 2000).is_none(), "signed out");
    }

    #[test]
    fn at_most_cap_sessions_live_at_once() {
        let s = Sessions::new(100, 1000, 2);
        let a = s.create(1, 0).unwrap();
        let b = s.create(2, 0).unwrap();
        assert_ne!(a, b);
        assert!(s.create(3, 50).is_none(), "full");
        assert!(s.create(3, 150).is_some(), "the idle ones were swept");
    }

    #[test]
    fn the_cookie_is_host_only_secure_httponly_strict() {
        let c = cookie_value("abc", 600);
        for part in ["__Host-jpki-session=abc", "Path=/", "Secure", "HttpOnly", "SameSite=Strict", "Max-Age=600"] {
            assert!(c.contains(part), "{part}");
        }
        assert!(!c.contains("Domain"));
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::COOKIE, "a=1; __Host-jpki-session=xyz; b=2".parse().unwrap());
        assert_eq!(session_id(&h).as_deref(), Some("xyz"));
    }
}
