//! The validator's one error type: input that cannot be checked, refusals of the verification
//! API, the responder's configuration, and the databases behind it. [`Error::kind`] is stable
//! to branch on; the mapping to HTTP lives in exactly one place (`impl IntoResponse for
//! Error`), where database and internal failures go out as a bare code and are logged here.
//! OCSP answers never come through it: an OCSP error is an OCSP response
//! ([`crate::responder::Service::answer`]).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Result with the validator's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the validator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument or a request field breaks a rule (a verifier id, a purpose, a field that is
    /// not base64, a body that is not a query); nothing was stored.
    #[error("{what}: {detail}")]
    Invalid {
        /// The argument or field.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A certificate given for validation does not parse.
    #[error("{what} is not a DER X.509 certificate: {detail}")]
    Certificate {
        /// Which certificate (`the certificate`, `anchor 2`, `intermediate 1`).
        what: String,
        /// The parser's message.
        detail: String,
    },
    /// A CRL given for validation does not parse.
    #[error("CRL {0} is not a DER CRL")]
    Crl(
        /// Its position among the CRLs given, from 1.
        usize,
    ),
    /// Path validation was asked for without a trust anchor.
    #[error("at least one --anchor is needed")]
    NoAnchor,
    /// The time of interest is out of range.
    #[error("time of interest out of range")]
    Time,
    /// A signed document that is not a CMS SignedData (RFC 5652 §5.1).
    #[error("not a CMS SignedData: {0}")]
    NotSignedData(
        /// Why (the decoder's message, or the content type found).
        String,
    ),
    /// A detached signature given without its content.
    #[error("the signature is detached: give the signed content")]
    NeedContent,
    /// A signed document without exactly one SignerInfo.
    #[error("{0} signers; exactly one is supported")]
    Signers(
        /// How many it has.
        usize,
    ),
    /// The signer's certificate is not among the document's certificates.
    #[error("the signer's certificate is not in the message")]
    NoSignerCert,
    /// DER that does not decode (or, rarely, a value that does not encode).
    #[error("DER: {0}")]
    Der(#[from] der::Error),
    /// The calling party of the verification API is not a registered verifier.
    #[error("{party} is not a registered verifier of this validator")]
    NotRegistered {
        /// The party (its URI).
        party: String,
    },
    /// A registered verifier asked for a purpose it is not registered for.
    #[error("purpose {purpose:?} is not registered for {verifier}")]
    PurposeNotRegistered {
        /// The purpose asked for.
        purpose: String,
        /// The verifier's id.
        verifier: String,
    },
    /// The responder's keys and certificates do not fit the CA (a responder certificate for
    /// another key, a CA key as responder key, no CA generation for the responder's AKI).
    #[error("{0}")]
    Config(String),
    /// The CA's status boundary ([`ca::status::StatusSource`]: the CA's database or the CA
    /// service's status stream) or a CA operation (signing with a responder key) failed.
    #[error("CA: {0}")]
    Ca(#[from] ca::Error),
    /// The validator's own database failed (or could not be migrated). Its text never leaves
    /// the process.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A failure inside the validator (a worker task that did not finish, a poisoned lock,
    /// unreadable data from the CA's tables).
    #[error("internal: {0}")]
    Internal(String),
    /// The shared store of pre-signed OCSP responses (Redis) did not answer or refused.
    #[error("OCSP store: {0}")]
    Store(String),
}

/// Stable classification of [`Error`] for callers and the wire mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad input (hostile or mistaken): the caller can fix it.
    Invalid,
    /// Refused: the caller is not allowed this.
    Forbidden,
    /// The operator's configuration does not fit (found at start-up).
    Config,
    /// A database or the CA's status source could not answer; a retry may succeed.
    Unavailable,
    /// A fault of the validator.
    Internal,
}

impl Error {
    /// Bad input in `what`.
    pub fn invalid(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Invalid { what, detail: detail.to_string() }
    }

    /// The stable kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. }
            | Self::Certificate { .. }
            | Self::Crl(_)
            | Self::NoAnchor
            | Self::Time
            | Self::NotSignedData(_)
            | Self::NeedContent
            | Self::Signers(_)
            | Self::NoSignerCert
            | Self::Der(_) => ErrorKind::Invalid,
            Self::NotRegistered { .. } | Self::PurposeNotRegistered { .. } => ErrorKind::Forbidden,
            Self::Config(_) => ErrorKind::Config,
            Self::Db(_) | Self::Store(_) => ErrorKind::Unavailable,
            Self::Ca(e) => match e.kind() {
                "db" | "io" | "identity" | "status_service" => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

/// Errors of the identity crate's store (opening the validator's database): a database
/// failure stays one; anything else (a bad URL or path) is configuration.
impl From<identity::Error> for Error {
    fn from(e: identity::Error) -> Self {
        match e {
            identity::Error::Database(e) => Self::Db(e),
            identity::Error::Migrate(e) => Self::Db(e.into()),
            other => Self::Config(other.to_string()),
        }
    }
}

/// The one mapping of [`Error`] to the verification API's wire: an HTTP status and a JSON body
/// `{"error": code, "message": text}` (the shape of the identity network's API). A 4xx says
/// what is wrong; a 5xx says only `internal error` or `unavailable; retry`, never the text of
/// a database or internal error (SQL, sqlx or driver messages): that is logged here, with the
/// error kind, and carries no request data.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = match self.kind() {
            ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid"),
            ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::error!(error = %self, kind = ?self.kind(), "verification API: unavailable");
                "unavailable; retry".to_owned()
            }
            s if s.is_server_error() => {
                tracing::error!(error = %self, kind = ?self.kind(), "verification API: internal error");
                "internal error".to_owned()
            }
            _ => self.to_string(),
        };
        (status, Json(serde_json::json!({ "error": code, "message": message }))).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    /// A database error reaches the wire as a bare code: neither the SQL nor sqlx's message
    /// (which names tables and columns) is in the body.
    #[tokio::test]
    async fn database_errors_leave_no_database_text_in_the_body() {
        let t = identity::store::testing::sqlite().unwrap();
        let db = identity::store::Db::connect(&t.url).await.unwrap();
        let e = sqlx::query("SELECT secret_hash FROM validator_no_such_table WHERE id = $1")
            .bind("bank-1")
            .execute(db.pool())
            .await
            .unwrap_err();
        let sqlx_text = e.to_string();
        assert!(sqlx_text.contains("validator_no_such_table"), "{sqlx_text}");
        for e in [Error::from(e), Error::Ca(ca::Error::Db(sqlx::Error::Protocol(sqlx_text.clone())))] {
            assert_eq!(e.kind(), ErrorKind::Unavailable);
            let (status, b) = body(e.into_response()).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(b, r#"{"error":"unavailable","message":"unavailable; retry"}"#);
            assert!(!b.contains("validator_no_such_table") && !b.contains("SELECT"), "{b}");
        }
        let (status, b) = body(Error::Internal(format!("task: {sqlx_text}")).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(b, r#"{"error":"internal","message":"internal error"}"#);
    }

    /// Input errors and refusals say what is wrong.
    #[tokio::test]
    async fn input_errors_and_refusals_say_why() {
        let (status, b) = body(Error::invalid("certificate", "not base64").into_response()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(b, r#"{"error":"invalid","message":"certificate: not base64"}"#);
        let e = Error::PurposeNotRegistered { purpose: "marketing".into(), verifier: "bank-1".into() };
        let (status, b) = body(e.into_response()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(b.contains(r#""error":"forbidden""#) && b.contains("marketing"), "{b}");
    }
}
