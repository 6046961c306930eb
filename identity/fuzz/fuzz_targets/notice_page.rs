//! A page of change notices as a replica receives it from its peer (`GET
//! /v1/sources/{source}/notices`, JSON), through everything a replica does with it before it
//! touches its database: the page check, each notice's chain hash, signature envelope and
//! signature — verified by the real notice-key verifier (`net::notice_key::Verifier`, the
//! fixture notice key admitted under the fixture network CA) —, the ownership rule's shape
//! checks and the apply decision. Never a panic. And the two checks together bind the content:
//! the signature covers `(source, seq, hash)` as the notice states its hash, so a notice whose
//! content was changed under a genuine signature still verifies — what keeps it out is that the
//! apply decision recomputes the hash first (`decide`: diverged). The target asserts exactly
//! that: a notice whose signature verifies and that `decide` would apply (or park) has the hash
//! its content gives.
#![no_main]

use std::sync::OnceLock;

use identity::apply::{Cursor, Decision, Facts, Tier, check_ownership, check_page, decide};
use identity::ids::LgCode;
use identity::notice::ChangeNotice;
use identity::notice_sig::{NoticeVerifier, verify_notice};
use libfuzzer_sys::fuzz_target;
use net::credential::Trust;
use net::notice_key::Verifier;

/// The fixture network CA (PEM), its notice key certificate for municipality 131016 (DER);
/// made by `fixtures/make.sh`.
const NETWORK_CA: &[u8] = include_bytes!("../fixtures/network-ca.pem");
const NOTICE_CERT: &[u8] = include_bytes!("../fixtures/notice-131016.der");

/// The verifier with the fixture key admitted; the CA file lives in a temp dir for the run.
fn verifier() -> &'static Verifier {
    static V: OnceLock<(tempfile::TempDir, std::sync::Arc<Verifier>)> = OnceLock::new();
    let (_, v) = V.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("network-ca.pem");
        std::fs::write(&ca_file, NETWORK_CA).expect("write the fixture CA");
        let v = Verifier::new(Trust { ca_file, crl_file: None });
        let source: LgCode = "131016".parse().expect("lg code");
        v.admit_key(&source, NOTICE_CERT).expect("the fixture notice key is admitted");
        (dir, v)
    });
    v
}

fuzz_target!(|data: &[u8]| {
    let verifier = verifier();
    let Ok(page) = serde_json::from_slice::<Vec<ChangeNotice>>(data) else { return };
    let Some(first) = page.first() else { return };
    let _ = check_page(first.key.source.as_str(), &page);
    let cursor = Cursor::START;
    for n in &page {
        let signed = verify_notice(verifier, n).is_ok();
        let decision = decide(&cursor, n, None, true);
        if signed && matches!(decision, Decision::Apply | Decision::Park { .. }) {
            assert!(n.verify_hash().is_ok(), "a signed notice would be applied with content its hash does not give");
        }
        let _ = check_ownership(n, &Facts::default(), Tier::National);
        let _ = check_ownership(n, &Facts::default(), Tier::Prefecture);
        let _ = decide(&cursor, n, Some(&n.hash), false);
    }
});
