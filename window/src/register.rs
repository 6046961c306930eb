//! The window's client of the municipality's node (and, for disclosure reports, the national
//! node): the typed requests of `identity::window` sent with `identity::client::window_call`
//! over mutual TLS as this window, each signed by the signed-in clerk (`net::clerk` headers
//! over window, method, path, time and body), so the node writes the change to its operator
//! log under window and clerk. No resident code or name is in any URL.

use identity::client::window_call;
use identity::window::WindowRequest;

use crate::{App, Clerk};

/// Why the node did not do what the window asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// A decision, with the node's stable code.
    #[error("refused ({code}): {detail}")]
    Refused {
        /// Stable code (`not_found`, `not_own_municipality`, `clerk_stale`, `conflict`, …).
        code: String,
        /// The node's explanation.
        detail: String,
    },
    /// No answer: nothing was changed; the request may be repeated.
    #[error("the node is unreachable: {0}")]
    Unavailable(String),
    /// The node failed or answered something unusable.
    #[error("the node failed: {0}")]
    Failed(String),
}

impl From<identity::Error> for NodeError {
    fn from(e: identity::Error) -> Self {
        match e.peer_answer() {
            Some(a) if (400..500).contains(&a.status) => {
                NodeError::Refused { code: a.code().to_owned(), detail: a.message.clone() }
            }
            Some(a) if (502..=504).contains(&a.status) => {
                NodeError::Unavailable(format!("{}: {}", a.code(), a.message))
            }
            Some(a) => NodeError::Failed(format!("{} {}: {}", a.status, a.code(), a.message)),
            None => match e {
                identity::Error::Peer { .. } => NodeError::Unavailable(e.to_string()),
                e => NodeError::Failed(e.to_string()),
            },
        }
    }
}

/// Sends `request` to `base` with `client`, signed by `clerk` at this window.
async fn call<Q: WindowRequest>(
    app: &App,
    clerk: &Clerk,
    client: &reqwest::Client,
    base: &str,
    request: &Q,
) -> Result<Q::Answer, NodeError> {
    let sign = clerk.key.window_signer(app.cfg.window.clone());
    Ok(window_call(client, base, request, &sign).await?)
}

/// `request` to the municipality's node.
pub async fn node<Q: WindowRequest>(app: &App, clerk: &Clerk, request: &Q) -> Result<Q::Answer, NodeError> {
    let p = &app.cfg.peers;
    call(app, clerk, &p.node, &p.node_url, request).await
}

/// `request` to the national node (disclosure reports).
pub async fn national<Q: WindowRequest>(app: &App, clerk: &Clerk, request: &Q) -> Result<Q::Answer, NodeError> {
    let p = &app.cfg.peers;
    let (Some(client), Some(url)) = (&p.national, &p.national_url) else {
        return Err(NodeError::Unavailable("no national node configured (--national)".into()));
    };
    call(app, clerk, client, url, request).await
}
