//! Identity network (住基ネット model): resident records at municipalities, immutable
//! chained change notices, replication municipality → prefecture → national, resident-code
//! pools, the change-information feed, and law-table-bound provision to agencies.
//!
//! Pure cores: [`ids`], [`person`], [`notice`], [`notice_sig`] (signature envelope and the
//! signer/verifier traits), [`apply`], [`law`], [`rate_limit`]. Shells: [`store`]
//! (sqlx), [`municipal`], [`replica`], [`national`], [`http`] (axum), [`console`] (the
//! operator console's HTML pages), [`client`].

pub mod apply;
pub mod authz;
pub mod backup;
pub mod check_digit;
pub mod client;
pub mod console;
pub mod error;
pub mod http;
pub mod ids;
pub mod kiosk;
pub mod law;
pub mod municipal;
pub mod national;
pub mod openapi;
pub mod operator;
pub mod party;
pub mod person;
pub mod progress;
pub mod provision;
pub mod rate_limit;
pub mod replica;
pub mod request_id;
pub mod standby;
pub mod store;
pub mod widearea;
pub mod window;
pub mod window_routes;

pub mod notice;
pub mod notice_sig;
#[cfg(any(test, feature = "test-keys"))]
pub mod test_keys;

pub use error::{Error, ErrorKind, Result};
