//! OCSP request parsing (what the responder does first with every request body): never a
//! panic, and a request that parses re-encodes to bytes that parse to the same request.
#![no_main]

use der::{Decode, Encode};
use libfuzzer_sys::fuzz_target;
use validator::ocsp::{OcspRequest, OcspResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = OcspRequest::from_der(data) {
        let again = r.to_der().expect("a parsed request encodes");
        assert_eq!(OcspRequest::from_der(&again).expect("re-parse"), r);
    }
    let _ = OcspResponse::from_der(data);
});
