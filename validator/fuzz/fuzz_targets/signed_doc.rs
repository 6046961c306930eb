//! Signed documents (CMS SignedData) as `jpki verify doc` and the verification API receive them:
//! `verify_signed` on any bytes (with the fixed content for a detached signature, the fixture
//! root as the only anchor) gives an error or a report, never a panic, and a report that says
//! valid names the one certificate that chains to the anchor. The signer's certificate then goes
//! through what the API does with it (identity items, the signature-certificate check).
#![no_main]

mod fixtures;

use der::Decode;
use fixtures::{AT, CONTENT, ROOT, SIGNER};
use libfuzzer_sys::fuzz_target;
use validator::signed_doc::{identity_items, signature_certificate, verify_signed};
use validator::verify::Revocation;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = verify_signed(data, Some(CONTENT), vec![ROOT.to_vec()], Vec::new(), Revocation::None, AT) else {
        return;
    };
    if report.valid() {
        assert_eq!(report.signer_cert, SIGNER, "a valid report names a certificate the anchor did not issue");
    }
    if let Ok(cert) = x509_cert::Certificate::from_der(&report.signer_cert) {
        let _ = identity_items(&cert);
        let _ = signature_certificate(&cert, ca::hierarchy::POLICY_SIGNATURE);
    }
});
