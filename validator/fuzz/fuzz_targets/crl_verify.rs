//! The verifier's CRL handling on hostile CRLs: `jpki verify cert --crl`, `jpki verify doc --crl`
//! and the verification API hand each CRL to `validator::verify` (certval's CRL parser and
//! revocation check, the fork in vendor/certval). Any bytes: an error or a verdict, never a
//! panic. And a differential check against our own one-pass parser: if path validation calls
//! the signer valid with this CRL, `CrlIndex` must not find the signer's serial in it.
#![no_main]

mod fixtures;

use fixtures::{AT, ROOT, SIGNER, SIGNER_SERIAL};
use libfuzzer_sys::fuzz_target;
use validator::crl_index::CrlIndex;
use validator::verify::{Input, Revocation, Verdict, verify};

fuzz_target!(|data: &[u8]| {
    let input = Input::new(SIGNER.to_vec(), vec![ROOT.to_vec()], Vec::new(), AT, Revocation::Crls(vec![data.to_vec()]));
    if let Ok(Verdict::Valid { .. }) = verify(&input)
        && let Ok(index) = CrlIndex::parse(data)
    {
        assert!(!index.contains(SIGNER_SERIAL), "path validation accepted a CRL that revokes the signer");
    }
});
