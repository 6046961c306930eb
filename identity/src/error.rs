//! The identity crate's one error type; `kind()` is stable to branch on, and the HTTP
//! mapping lives in exactly one place (`http::AppError`).

use crate::law::Refusal;

/// Everything that can go wrong in the identity network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input that breaks a validation rule (hostile or mistaken); nothing was stored.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which field or parameter.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The named thing does not exist on this node.
    #[error("{what} {key} not found")]
    NotFound {
        /// Kind of thing (resident, municipality, …).
        what: &'static str,
        /// Its key.
        key: String,
    },
    /// The request is valid but contradicts the current state (e.g. a dead resident moves).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The operator's role does not allow this action.
    #[error("operator {operator} ({role}) may not {action}")]
    Forbidden {
        /// Operator id.
        operator: String,
        /// Their role.
        role: String,
        /// The refused action.
        action: &'static str,
    },
    /// No authenticated party: the request carries no party from a verified client
    /// certificate (it did not come through the mutual-TLS server).
    #[error("authentication failed")]
    Unauthenticated,
    /// An authenticated party called a route its role does not allow (the authorization
    /// table, `authz.rs`); nothing was applied.
    #[error("{party} may not {action}: {reason}")]
    Denied {
        /// The calling party (its URI).
        party: String,
        /// The route or action refused.
        action: &'static str,
        /// Stable reason code ([`crate::authz::Denial::code`]).
        reason: &'static str,
    },
    /// A window's request whose clerk signature was not accepted ([`crate::authz::ClerkCheck`]):
    /// missing, untrusted, stale, of another municipality's clerk, or not verifying. Nothing
    /// was applied.
    #[error("{party}: the clerk is not authenticated: {detail}")]
    ClerkRefused {
        /// The calling window (its URI).
        party: String,
        /// Stable reason code ([`crate::authz::ClerkRefused::code`]).
        reason: &'static str,
        /// What is wrong, for the clerk.
        detail: String,
    },
    /// A kiosk's request refused (コンビニ交付, [`crate::kiosk`]): an unknown, used, expired or
    /// another kiosk's challenge, a card signature or certificate not accepted, a resident not
    /// registered here. Nothing was issued. `message` is for the resident at the kiosk
    /// (Japanese, no personal data).
    #[error("{message}")]
    KioskRefused {
        /// The calling kiosk (its URI).
        party: String,
        /// Stable reason code ([`crate::kiosk::KioskRefused::code`]).
        reason: &'static str,
        /// What the kiosk shows the resident.
        message: String,
    },
    /// A 広域交付 request refused ([`crate::widearea`]) at the window's node, the national
    /// relay or the resident's municipality: not found (resident code and date of birth do not
    /// both match a current resident), a resident of the requesting municipality itself, over
    /// the requesting municipality's rate, outside the law table, a node that does not take
    /// part, or the resident's node unreachable. Nothing was issued. `message` is for the clerk
    /// (Japanese, no personal data).
    #[error("{message}")]
    WideAreaRefused {
        /// The party refused (its URI).
        party: String,
        /// Stable reason code ([`crate::widearea::Refused::code`]).
        reason: &'static str,
        /// For the clerk.
        message: String,
    },
    /// A provision request outside the law table (logged as a refusal).
    #[error("refused: {0}")]
    Refused(Refusal),
    /// A municipality ran out of pooled resident codes; ask the national node for more.
    #[error("resident-code pool of {0} is empty: request a new pool from the national node")]
    PoolExhausted(String),
    /// A municipality has no notice key installed, so it commits nothing: every notice it
    /// writes must be signed (install one with `Municipality::set_signer`).
    #[error("municipality {municipality} has no notice key installed: unsigned notices are never committed")]
    NoNoticeKey {
        /// Municipality code.
        municipality: String,
    },
    /// The notice key failed to sign (HSM or key store failure); nothing was committed.
    #[error("notice key {key_id} failed to sign: {reason}")]
    Signing {
        /// Key id of the signer.
        key_id: String,
        /// The signer's message.
        reason: String,
    },
    /// A replicated notice does not extend the stored chain, or its signature is missing,
    /// made by a key not admitted for its source, or does not verify (`reason` then starts
    /// with `signature:`): the source is halted.
    #[error("chain of source {source_code} diverged at seq {seq}: {reason}; source halted")]
    Diverged {
        /// Municipality code of the source.
        source_code: String,
        /// Sequence number of the offending notice.
        seq: u64,
        /// What did not match.
        reason: String,
    },
    /// A replicated notice writes what its source is not entitled to write (another
    /// municipality's resident, a code issued elsewhere, a move-in without that resident's
    /// move-out to it): the source is halted, as for a diverged chain.
    #[error("notice {source_code}/{seq} breaks the ownership rule: {reason}; source halted")]
    Ownership {
        /// Municipality code of the source.
        source_code: String,
        /// Sequence number of the offending notice.
        seq: u64,
        /// Which part of the rule it breaks (codes and municipalities only, no personal data).
        reason: String,
    },
    /// The source was halted earlier (diverged chain or ownership) and needs an operator.
    #[error("source {source_code} is halted: {reason}")]
    Halted {
        /// Municipality code of the source.
        source_code: String,
        /// Why it was halted.
        reason: String,
    },
    /// A peer node answered with an error or could not be reached.
    #[error("peer {url}: {reason}")]
    Peer {
        /// The peer's URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A peer node answered with an error body (`{"error", "message", "reason"}`): its HTTP
    /// status and stable code are in [`crate::client::PeerAnswer`] (for a window, e.g.
    /// `not_own_municipality`, `clerk_bad_signature`, `not_found`).
    #[error("peer {}: {}", .0.url, .0)]
    PeerAnswer(Box<crate::client::PeerAnswer>),
    /// The window's clerk-signing callback failed; nothing was sent.
    #[error("the clerk's signature could not be made: {0}")]
    ClerkSigning(String),
    /// Stored data failed to decode: a bug or tampering, never user input.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Decoder message.
        reason: String,
    },
    /// The hot standby given for provision reads (`--pg-read-url`) is not one this node may
    /// read from: unreachable, not in recovery, a standby of another cluster, or another
    /// database. Nothing is read from it.
    #[error("provision standby refused: {0}")]
    ReadStandby(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Database migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Stable classification of [`Error`] for callers and the wire mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input.
    Invalid,
    /// Missing entity.
    NotFound,
    /// State conflict.
    Conflict,
    /// Not permitted.
    Forbidden,
    /// Not authenticated.
    Unauthenticated,
    /// Outside the law table.
    Refused,
    /// Replication integrity failure.
    Integrity,
    /// Peer or infrastructure failure.
    Unavailable,
    /// Internal failure.
    Internal,
}

impl Error {
    pub(crate) fn invalid(field: &'static str, reason: String) -> Self {
        Self::InvalidInput { field, reason }
    }

    pub(crate) fn not_found(what: &'static str, key: impl ToString) -> Self {
        Self::NotFound { what, key: key.to_string() }
    }

    pub(crate) fn corrupt(what: &'static str, reason: impl ToString) -> Self {
        Self::Corrupt { what, reason: reason.to_string() }
    }

    /// A peer's error answer, if this is one: its status, stable code and message (what a
    /// window shows its clerk).
    pub fn peer_answer(&self) -> Option<&crate::client::PeerAnswer> {
        match self {
            Self::PeerAnswer(a) => Some(a),
            _ => None,
        }
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput { .. } => ErrorKind::Invalid,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Conflict(_) | Self::PoolExhausted(_) | Self::NoNoticeKey { .. } => ErrorKind::Conflict,
            Self::Forbidden { .. } | Self::Denied { .. } => ErrorKind::Forbidden,
            Self::KioskRefused { reason, .. } if *reason == crate::kiosk::UNAVAILABLE => ErrorKind::Unavailable,
            Self::KioskRefused { .. } => ErrorKind::Forbidden,
            Self::WideAreaRefused { reason, .. } => crate::widearea::kind_of(reason),
            Self::Unauthenticated | Self::ClerkRefused { .. } => ErrorKind::Unauthenticated,
            Self::Refused(_) => ErrorKind::Refused,
            Self::Diverged { .. } | Self::Ownership { .. } | Self::Halted { .. } => ErrorKind::Integrity,
            Self::Peer { .. } | Self::PeerAnswer(_) | Self::ReadStandby(_) => ErrorKind::Unavailable,
            Self::Corrupt { .. }
            | Self::Signing { .. }
            | Self::ClerkSigning(_)
            | Self::Database(_)
            | Self::Migrate(_) => ErrorKind::Internal,
        }
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
