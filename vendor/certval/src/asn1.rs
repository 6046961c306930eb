//! ASN.1 encoders and decoders not included in a RustCrypto formats repo

pub mod piv_naci_indicator;

pub use crate::asn1::piv_naci_indicator::*;
