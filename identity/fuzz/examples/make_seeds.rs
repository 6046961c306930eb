//! Writes the seed corpora of the notice fuzz targets: a chain of three notices of municipality
//! 131016 (a birth, a move out to 271004, a code change), sealed and signed with the fixture
//! notice key (`fixtures/notice-131016.pk8`, ECDSA P-384 SHA-384 as `net::notice_key` signs),
//! as canonical encodings (`seeds/notice_decode/`) and as JSON pages a peer serves
//! (`seeds/notice_page/`: the whole chain, each notice alone, and the chain unsigned).
//!
//! `cargo run --manifest-path identity/fuzz/Cargo.toml --example make_seeds`
#![allow(clippy::unwrap_used, clippy::expect_used)] // a one-off generator: a panic is a failed run

use std::path::Path;

use identity::ids::{LgCode, ResidentCode};
use identity::notice::{ChangeNotice, GENESIS, NoticeBody, NoticeKind, parse_date};
use identity::notice_sig::{NoticeSignature, SIGNATURE_VERSION, signed_message};
use identity::person::{FlaggedText, FourItems, Record, ResidentStatus, Sex};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair};

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cert = std::fs::read(here.join("fixtures/notice-131016.der")).unwrap();
    let key_id = net::notice_key::key_id(&cert).unwrap();
    let rng = SystemRandom::new();
    let pk8 = std::fs::read(here.join("fixtures/notice-131016.pk8")).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, &pk8, &rng).unwrap();

    let source: LgCode = "131016".parse().unwrap();
    let code = ResidentCode::from_body([1, 2, 3, 4, 5, 6, 7, 8, 9, 0]).unwrap();
    let new_code = ResidentCode::from_body([2, 3, 4, 5, 6, 7, 8, 9, 0, 1]).unwrap();
    let record = |code: &ResidentCode, status, version| Record {
        resident_code: code.clone(),
        items: FourItems {
            name: FlaggedText::new("name", "試験 花子", "00100").unwrap(),
            address: FlaggedText::plain("address", "東京都千代田区試験町一丁目1番1号").unwrap(),
            date_of_birth: parse_date("dob", "2026-04-01").unwrap(),
            sex: Sex::Female,
        },
        status,
        municipality: source.clone(),
        version,
    };
    let body = |kind, record| NoticeBody {
        kind,
        effective_date: parse_date("effective_date", "2026-04-01").unwrap(),
        recorded_at: 1_775_000_000,
        operator: "clerk-1".into(),
        previous_code: None,
        predecessor: None,
        destination: None,
        record,
    };
    let birth = body(NoticeKind::Birth, record(&code, ResidentStatus::Active, 1));
    let mut code_change = body(NoticeKind::CodeChange, record(&new_code, ResidentStatus::Active, 2));
    code_change.previous_code = Some(code.clone());
    let mut move_out = body(NoticeKind::MoveOut, record(&new_code, ResidentStatus::MovedOut, 3));
    move_out.destination = Some("271004".parse().unwrap());

    let mut chain = Vec::new();
    let mut prev = GENESIS;
    for (seq, b) in [birth, code_change, move_out].into_iter().enumerate() {
        let mut n = ChangeNotice::seal(source.clone(), seq as u64 + 1, prev, b);
        let signature = key.sign(&rng, &signed_message(&n.key, &n.hash)).unwrap().as_ref().to_vec();
        n.signature = Some(NoticeSignature { version: SIGNATURE_VERSION, key_id: key_id.clone(), signature });
        prev = n.hash;
        chain.push(n);
    }

    let decode = here.join("seeds/notice_decode");
    let page = here.join("seeds/notice_page");
    std::fs::create_dir_all(&decode).unwrap();
    std::fs::create_dir_all(&page).unwrap();
    for n in &chain {
        std::fs::write(decode.join(format!("seq{}.bin", n.key.seq)), n.encoding()).unwrap();
        std::fs::write(page.join(format!("seq{}.json", n.key.seq)), serde_json::to_vec(&[n]).unwrap()).unwrap();
    }
    std::fs::write(page.join("chain.json"), serde_json::to_vec_pretty(&chain).unwrap()).unwrap();
    let unsigned: Vec<ChangeNotice> = chain.iter().cloned().map(|n| ChangeNotice { signature: None, ..n }).collect();
    std::fs::write(page.join("chain-unsigned.json"), serde_json::to_vec(&unsigned).unwrap()).unwrap();
    println!("seeds written to {} and {}", decode.display(), page.display());
}
