//! The request id that follows one request across nodes (issue 13): a server takes the caller's
//! `x-request-id` (if it is a plausible id) or makes one, answers with it, logs inside a span
//! carrying it, and runs the handler with it set here; every request a [`crate::client::Peer`]
//! makes while handling it carries the same header.

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The header.
pub const HEADER: &str = "x-request-id";

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A caller's id, if it is one we keep: 1–64 of `A–Z a–z 0–9 - _ .` (anything else is replaced,
/// so a log line never carries what a client chose to put there).
pub fn accept(v: &str) -> Option<String> {
    let ok = (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then(|| v.to_owned())
}

/// A new id (128 random bits, hex).
pub fn fresh() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Runs `f` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_accepted() {
        assert_eq!(accept("req-42_a.b"), Some("req-42_a.b".to_owned()));
        for bad in ["", "a b", "x\ny", "山田", &"a".repeat(65), "a=b"] {
            assert_eq!(accept(bad), None, "{bad:?}");
        }
        assert_eq!(fresh().len(), 32);
    }

    #[tokio::test]
    async fn the_id_is_current_only_inside_its_scope() {
        assert_eq!(current(), None);
        assert_eq!(scope("r1".into(), async { current() }).await, Some("r1".to_owned()));
        assert_eq!(current(), None);
    }
}
