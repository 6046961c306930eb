//! The `net` crate's one error type; `kind()`-free: every variant is a configuration or
//! peer problem that the caller reports and stops on.

/// Everything that can go wrong loading credentials or serving and calling over TLS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A secret (passphrase, PIN) is missing from the environment or too weak.
    #[error("secret {name}: {reason}")]
    Secret {
        /// The environment variable (or its `_FILE` twin) that should hold it.
        name: String,
        /// What is wrong (never the value).
        reason: String,
    },
    /// A key file could not be sealed or opened (wrong passphrase, corrupt file).
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A certificate, chain or CRL is malformed or does not fit its use.
    #[error("credential {what}: {reason}")]
    Credential {
        /// Which certificate or file.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// TLS configuration could not be built.
    #[error("tls: {0}")]
    Tls(String),
    /// File or socket I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// A stable kind label for branching, exit codes and logs (never a secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Secret { .. } => "secret",
            Self::KeyFile { .. } => "key_file",
            Self::Credential { .. } => "credential",
            Self::Tls(_) => "tls",
            Self::Io { .. } => "io",
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    #[allow(dead_code, reason = "used by the credential loader")]
    pub(crate) fn credential(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Credential { what: what.into(), reason: reason.to_string() }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
