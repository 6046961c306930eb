//! Command and response APDU parsing: total on every input, and what parses re-encodes to
//! something that parses the same.
#![no_main]

use card::apdu::{Command, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = Command::parse(data) {
        let again = c.encode().expect("a parsed command encodes");
        assert_eq!(Command::parse(&again).expect("re-parse"), c);
    }
    if let Ok(r) = Response::parse(data) {
        assert_eq!(r.to_bytes(), data);
    }
    let _ = card::jpki::CardStatus::parse(data);
    let _ = card::jpki::TokenInfo::parse(data);
});
