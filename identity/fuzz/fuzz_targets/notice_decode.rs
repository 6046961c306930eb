//! The change-notice decoder on untrusted bytes (`notice::decode_untrusted`, the frozen
//! canonical encoding v1 that stored notices are read back from and the chain hash covers):
//! an error or a notice, never a panic, and what decodes is canonical — sealing the decoded
//! key and body encodes to exactly the input bytes, so two different byte strings never
//! decode to the same notice (the chain hash of a notice is a function of the notice).
#![no_main]

use identity::notice::{ChangeNotice, decode_untrusted};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((key, body)) = decode_untrusted(data) {
        let n = ChangeNotice::seal(key.source, key.seq, [0; 32], body);
        assert_eq!(n.encoding(), data, "a decoded notice re-encodes to other bytes");
    }
});
