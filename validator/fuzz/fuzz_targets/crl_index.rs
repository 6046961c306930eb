//! The verifier's CRL index on arbitrary bytes: an error or an index, never a panic; every
//! serial it indexed is found again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use validator::crl_index::CrlIndex;

fuzz_target!(|data: &[u8]| {
    if let Ok(idx) = CrlIndex::parse(data) {
        if !idx.is_empty() {
            assert!(idx.contains(&idx.sample_serial()));
        }
    }
});
