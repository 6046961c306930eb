//! Signing a clerk in and out, and the checks every page and form makes: a live session, a CSRF
//! token of that session, a same-origin request. A clerk signs in with their id and the
//! passphrase of their own key file; five wrong passphrases lock that id for five minutes
//! (scrypt already makes each try slow). Refusals are logged with the clerk id and a reason,
//! never the passphrase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::header::{HOST, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use identity::party::{Party, PartyKind};

use crate::{App, Clerk};

/// Wrong passphrases before an id is locked.
pub const MAX_FAILURES: u32 = 5;
/// How long a locked id stays locked.
pub const LOCK_SECS: i64 = 300;

/// Failed sign-ins per clerk id (in memory).
#[derive(Debug, Default)]
pub struct Failures(Mutex<HashMap<String, (u32, i64)>>);

impl Failures {
    /// Whether `id` is locked at `now`.
    pub fn locked(&self, id: &str, now: i64) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).is_some_and(|(n, at)| *n >= MAX_FAILURES && now - at < LOCK_SECS)
    }

    fn failed(&self, id: &str, now: i64) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() > 1024 {
            map.retain(|_, (_, at)| now - *at < LOCK_SECS);
        }
        let e = map.entry(id.to_owned()).or_insert((0, now));
        if now - e.1 >= LOCK_SECS {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
        e.0
    }

    fn succeeded(&self, id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
    }
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninError {
    /// Not a clerk id (1–16 of A–Z a–z 0–9 - _).
    BadId,
    /// Too many wrong passphrases.
    Locked,
    /// No key file for the id, or the passphrase does not open it.
    Wrong(u32),
    /// The key names someone else than a clerk of this municipality.
    NotHere(String),
    /// Too many sessions.
    Full,
}

/// Opens clerk `id`'s key with `passphrase` and starts a session; the session id.
pub async fn sign_in(app: &Arc<App>, id: &str, passphrase: zeroize::Zeroizing<String>) -> Result<String, SigninError> {
    let now = (app.clock)();
    let municipality = app.cfg.municipality.to_string();
    let want = Party::new(PartyKind::Clerk, Some(&format!("{municipality}:{id}"))).map_err(|_| SigninError::BadId)?;
    if app.signin_failures.locked(id, now) {
        tracing::warn!(clerk = id, reason = "locked", "sign-in refused");
        return Err(SigninError::Locked);
    }
    let prefix = app.cfg.clerks.join(id);
    let secret = net::secret::Secret::new(passphrase.as_bytes().to_vec());
    drop(passphrase);
    // scrypt: off the async workers.
    let loaded = tokio::task::spawn_blocking(move || net::clerk::ClerkKey::load(&prefix, &secret)).await;
    let key = match loaded {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => {
            let n = app.signin_failures.failed(id, now);
            tracing::warn!(clerk = id, reason = "key_not_opened", failures = n, error = %e, "sign-in refused");
            return Err(if n >= MAX_FAILURES { SigninError::Locked } else { SigninError::Wrong(MAX_FAILURES - n) });
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-in task failed");
            return Err(SigninError::Wrong(0));
        }
    };
    if *key.party() != want {
        tracing::warn!(clerk = id, names = %key.party(), reason = "not_this_municipality", "sign-in refused");
        return Err(SigninError::NotHere(key.party().to_string()));
    }
    app.signin_failures.succeeded(id);
    let sid = app.sessions.create(Clerk { key, id: id.to_owned() }, now).ok_or(SigninError::Full)?;
    tracing::info!(clerk = id, window = %app.cfg.window, "clerk signed in");
    Ok(sid)
}

/// A redirect (303) to `to`.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// A redirect that also sets the session cookie.
pub fn see_other_with_cookie(to: &str, cookie: String) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned()), (SET_COOKIE, cookie)]).into_response()
}

/// Why a request was not let through to its page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No live session: the answer is the redirect to the sign-in page.
    NotSignedIn,
    /// A form post from another site.
    CrossSite,
    /// A form post without a valid CSRF token of its session.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NotSignedIn => see_other("/signin"),
            Refused::CrossSite => refused("他のサイトからの送信は受け付けません。"),
            Refused::Csrf => refused("フォームの有効期限が切れたか、不正な送信です。"),
        }
    }
}

/// The signed-in clerk of a request: (session id, clerk).
pub fn session(app: &App, headers: &HeaderMap) -> Result<(String, Arc<Clerk>), Refused> {
    let sid = web::session::session_id(headers).ok_or(Refused::NotSignedIn)?;
    let clerk = app.sessions.get(&sid, (app.clock)()).ok_or(Refused::NotSignedIn)?;
    Ok((sid, clerk))
}

/// Checks a form post: same origin, and a CSRF token of `binding`. A refusal is a 403 page,
/// logged with its reason; the form is not read further.
pub fn check_post(app: &App, binding: &str, headers: &HeaderMap, token: Option<&str>) -> Result<(), Refused> {
    let host = headers.get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if web::csrf::cross_site(headers, host) {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        tracing::warn!(
            window = %app.cfg.window,
            reason = "cross_site",
            origin = h("origin"),
            sec_fetch_site = h("sec-fetch-site"),
            host,
            "form post refused"
        );
        return Err(Refused::CrossSite);
    }
    if let Err(e) = app.csrf.check(binding, token, (app.clock)()) {
        tracing::warn!(window = %app.cfg.window, reason = e.code(), "form post refused");
        return Err(Refused::Csrf);
    }
    Ok(())
}

fn refused(what: &str) -> Response {
    web::message(
        StatusCode::FORBIDDEN,
        "送信を受け付けられません",
        what,
        "ページを開き直してから、もう一度操作してください。",
        Some(("/", "ホームへ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_an_id_for_five_minutes() {
        let f = Failures::default();
        for i in 1..MAX_FAILURES {
            assert_eq!(f.failed("C1", 100), i);
            assert!(!f.locked("C1", 100));
        }
        assert_eq!(f.failed("C1", 100), MAX_FAILURES);
        assert!(f.locked("C1", 100));
        assert!(!f.locked("C2", 100), "only that id");
        assert!(f.locked("C1", 100 + LOCK_SECS - 1));
        assert!(!f.locked("C1", 100 + LOCK_SECS));
        assert_eq!(f.failed("C1", 100 + LOCK_SECS), 1, "the count starts again");
        f.succeeded("C1");
        assert!(!f.locked("C1", 100 + LOCK_SECS));
    }
}
