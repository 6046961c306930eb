//! The fixed inputs of the validator's fuzz targets, made with the openssl CLI by
//! `fixtures/make.sh`: a P-384 root, a signer certificate under it, the signed content, and the
//! time the targets validate at.
#![allow(dead_code, reason = "each target uses some of the fixtures")]

/// The trust anchor (DER).
pub const ROOT: &[u8] = include_bytes!("../fixtures/root.der");
/// The signer's certificate (DER), issued by [`ROOT`].
pub const SIGNER: &[u8] = include_bytes!("../fixtures/signer.der");
/// The content the seed signed documents sign (the detached seed needs it).
pub const CONTENT: &[u8] = include_bytes!("../fixtures/content.txt");
/// The signer's serial number (the content octets of its INTEGER; `make.sh` sets it).
pub const SIGNER_SERIAL: &[u8] = &[0x12, 0x34, 0x56, 0x78, 0x90];
/// 2030-01-01T00:00:00Z: inside every fixture's validity, fixed so that a run is reproducible.
pub const AT: u64 = 1_893_456_000;
