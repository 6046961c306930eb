//! The CA's one error type: what went wrong, with the context a clerk or operator needs.

/// Result with the CA error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a CA operation failed. Refusals (`Refused`) are answers to a request, not faults.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is refused; `code` is a stable reason code, `detail` says why.
    #[error("refused ({code}): {detail}")]
    Refused {
        /// Stable reason code (`resident_removed`, `under_age`, `bad_key`, `bad_pop`, …).
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// Input that is malformed (bad DER, bad PEM, bad argument).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Why it is invalid.
        detail: String,
    },
    /// Something that should exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A conflicting state (already initialised, already revoked, …).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A key-store or signing failure (OpenSSL, PKCS#11). Never carries secrets.
    #[error("key store: {0}")]
    Key(String),
    /// Stored data that fails a consistency check.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which data.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The identity network could not answer.
    #[error("identity network: {0}")]
    Identity(String),
    /// A change-feed entry does not match a notice signed by its municipality (forged,
    /// replayed or unverifiable): nothing of its page was applied.
    #[error("change feed refused: {0}")]
    Feed(String),
    /// The CA service's status stream (reached by a [`crate::status::StatusClient`]) did not
    /// answer, refused, or answered something unusable (an HTTP error, a body over the size
    /// bound, malformed JSON). Carries the service's URL and why; never a credential.
    #[error("CA status service {url}: {detail}")]
    StatusService {
        /// The CA service's base URL.
        url: String,
        /// What went wrong (transport error chain, HTTP status and the service's message).
        detail: String,
    },
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// File I/O failure.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A refusal with a stable code.
    pub fn refused(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Refused { code, detail: detail.into() }
    }
    /// Malformed input.
    pub fn invalid(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Invalid { what, detail: detail.to_string() }
    }
    /// Inconsistent stored data.
    pub fn corrupt(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt { what, detail: detail.to_string() }
    }
    /// A key-store failure.
    pub fn key(detail: impl std::fmt::Display) -> Self {
        Self::Key(detail.to_string())
    }
    /// A stable kind label for branching and exit codes.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused { code, .. } => code,
            Self::Invalid { .. } => "invalid",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Key(_) => "key",
            Self::Corrupt { .. } => "corrupt",
            Self::Identity(_) => "identity",
            Self::Feed(_) => "feed_refused",
            Self::StatusService { .. } => "status_service",
            Self::Db(_) => "db",
            Self::Io(_) => "io",
        }
    }
}

impl From<der::Error> for Error {
    fn from(e: der::Error) -> Self {
        Self::invalid("DER", e)
    }
}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Self::key(e)
    }
}

impl From<x509_cert::builder::Error> for Error {
    fn from(e: x509_cert::builder::Error) -> Self {
        Self::invalid("certificate", e)
    }
}

impl From<identity::Error> for Error {
    fn from(e: identity::Error) -> Self {
        Self::Identity(e.to_string())
    }
}

/// Errors of the `net` crate (secrets and key files): a weak or missing secret is bad input;
/// a key file that does not open is a key-store failure; I/O keeps its context.
impl From<net::Error> for Error {
    fn from(e: net::Error) -> Self {
        match e {
            net::Error::Secret { .. } => Self::invalid("passphrase", e),
            net::Error::Io { context, source } => {
                Self::Io(std::io::Error::new(source.kind(), format!("{context}: {source}")))
            }
            other => Self::key(other),
        }
    }
}
