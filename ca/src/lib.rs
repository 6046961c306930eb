//! Certificate authorities of the resident PKI: the signature and user-authentication
//! hierarchies (national roots, prefecture-unit issuing CAs, a separate test hierarchy), their
//! keys (OpenSSL software keys or PKCS#11), certificate profiles, crash-safe issuance, revocation
//! from the national change feed, and sharded CRLs.
//!
//! Pure cores (`profile`, `validity`, `revocation`, `crl` encoding) take their inputs and `now`;
//! the shell (`store`, `authority`, `feed`) does the I/O.

pub mod error;
pub mod key;
pub mod mldsa;
pub mod pkcs11;

pub use error::{Error, Result};
pub mod audit;
pub mod authority;
pub mod ceremony;
pub mod crl;
pub mod emergency;
pub mod follow;
pub mod hierarchy;
pub mod identity_source;
pub mod keystore;
pub mod kiosk;
pub mod network;
pub mod profile;
pub mod publish;
pub mod restore;
pub mod revocation;
pub mod schema;
pub mod service;
pub mod status;
pub mod validity;
