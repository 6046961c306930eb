//! The validation service for signature verifiers: an RFC 6960 OCSP responder serving
//! pre-signed responses from memory, and CRL distribution. Status comes from the CA's status
//! tables (read-only); responses are signed by delegated responder keys, never a CA key. The
//! scale-out mode splits it: signers write pre-signed responses into a shared store
//! ([`store`]), stateless responders without keys serve them ([`stateless`]).

pub mod api;
pub mod crl_index;
pub mod error;
pub mod hot;
pub mod http;
pub mod ocsp;
pub mod responder;
pub mod schema;
pub mod served;
pub mod signed_doc;
pub mod stateless;
pub mod store;
pub mod verify;

pub use error::{Error, ErrorKind, Result};
