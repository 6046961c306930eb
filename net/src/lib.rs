//! Network identity of the parties (national operator's network CA, separate from the
//! residents' hierarchies): secrets from the environment or files, encrypted key files,
//! credentials (a party's certificate chain and key), and the mutual-TLS shells every node
//! uses — servers with timeouts, connection caps and load shedding that learn the client's
//! [`identity::party::Party`] from its verified certificate, and clients that present their
//! own credential and pin the server's party. Only `ca` issues network certificates.

pub mod clerk;
pub mod client;
pub mod credential;
pub mod error;
pub mod keyfile;
pub mod metrics;
pub mod notice_key;
pub mod secret;
pub mod server;
pub mod tls;

pub use error::{Error, Result};
