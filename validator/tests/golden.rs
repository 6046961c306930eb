//! Golden test vectors: a test hierarchy, CRLs and OCSP responses made at a fixed clock from
//! fixed keys, compared byte for byte with the files committed in `tests/golden/`, and checked
//! with independent parsers and verifiers (the `openssl` CLI; pyca/cryptography for ML-DSA).
//!
//! Everything is made by the CA's and the validator's pure building functions
//! (`ca::profile::prepare`, `ca::validity::not_after`, `ca::crl::build`,
//! `validator::responder::{cert_id, single_response, signed_response}`) with fixed serials and a
//! fixed clock; signatures are deterministic: RSA PKCS#1 v1.5 is, ECDSA P-384 signs with RFC 6979
//! nonces (RustCrypto `p384`), ML-DSA-65 with its deterministic variant (FIPS 204 §3.4, rnd = 0).
//! The RSA keys are committed (`tests/golden/keys/`, test keys only: they sign nothing else);
//! P-384 scalars and ML-DSA seeds are hashes of a label.
//!
//! `cargo xtask golden` (JPKI_GOLDEN_UPDATE=1) rewrites the files; `cargo xtask golden --check`
//! (and this test in `cargo test`) fails on any difference and names the files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test: a panic is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use ca::crl::{CrlParams, Entry, Reason, Scope};
use ca::hierarchy::{CaId, Environment, Purpose};
use ca::key::{KeyAlgorithm, KeyBackend, key_identifier};
use ca::profile::{AuthenticationCert, IssuingCa, OcspResponder, RootCa, SanItems, SignatureCert, StatusUrls, prepare};
use ca::validity::{ValidityInput, not_after};
use der::Decode;
use ml_dsa::common::array::Array;
use openssl::pkey::{PKey, Private};
use sha2::Digest;
use time::OffsetDateTime;
use time::macros::date;
use validator::responder::{Alg, Responder, Status, cert_id, signed_response, single_response};
use x509_cert::Certificate;

/// The fixed clock: 2026-04-01T00:00:00Z. Certificates are issued at `NOW`, the revoked ones
/// revoked at `NOW + 600`, CRLs and OCSP responses made at `NOW + 3600`; the checks run at
/// `CHECK_AT`.
const NOW: i64 = 1_775_001_600;
const REVOKED_AT: i64 = NOW + 600;
const PUBLISHED_AT: i64 = NOW + 3600;
const CHECK_AT: i64 = NOW + 7200;
/// OCSP validity (nextUpdate − thisUpdate) and CRL lifetime.
const OCSP_VALIDITY: i64 = 3 * 86_400;
const CRL_HOURS: i64 = 24;
const BASE: &str = "http://golden.jpki.example";
/// The signature certificates' resident (fictional), with no substitute characters (all flags 0).
const NAME: &str = "試験 花子";
const ADDRESS: &str = "東京都千代田区霞が関一丁目1番1号";

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// A test key whose signatures are deterministic.
enum Material {
    Rsa(PKey<Private>),
    P384(p384::ecdsa::SigningKey),
    MlDsa(Box<ml_dsa::ExpandedSigningKey<ml_dsa::MlDsa65>>),
}

struct FixedKey {
    label: String,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
    material: Material,
}

impl std::fmt::Debug for FixedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedKey").field("label", &self.label).finish_non_exhaustive()
    }
}

impl KeyBackend for FixedKey {
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }
    fn sign_digest(&self, digest: &[u8]) -> ca::Result<Vec<u8>> {
        match &self.material {
            Material::Rsa(pkey) => {
                let mut ctx = openssl::pkey_ctx::PkeyCtx::new(pkey)?;
                ctx.sign_init()?;
                ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1)?;
                ctx.set_signature_md(openssl::md::Md::sha256())?;
                let mut out = Vec::new();
                ctx.sign_to_vec(digest, &mut out)?;
                Ok(out)
            }
            Material::P384(key) => {
                use signature::hazmat::PrehashSigner;
                let sig: p384::ecdsa::DerSignature =
                    key.sign_prehash(digest).map_err(|e| ca::Error::key(format!("P-384: {e}")))?;
                Ok(sig.as_bytes().to_vec())
            }
            Material::MlDsa(key) => {
                let mu: [u8; 64] = digest.try_into().map_err(|_| ca::Error::key("μ is 64 bytes"))?;
                Ok(key.sign_mu_deterministic(&Array::from(mu)).encode().to_vec())
            }
        }
    }
    fn key_ref(&self) -> String {
        format!("golden:{}", self.label)
    }
}

/// `n` bytes derived from `label` (SHA-384 chained).
fn derive(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut block = sha2::Sha384::digest(format!("jpki golden vectors: {label}").as_bytes()).to_vec();
    while out.len() < n {
        out.extend_from_slice(&block);
        block = sha2::Sha384::digest(&block).to_vec();
    }
    out.truncate(n);
    out
}

/// The key named `label`: RSA from `keys/<label>.pem` (generated there in update mode if
/// missing), P-384 and ML-DSA-65 derived from the label.
fn key(label: &str, algorithm: KeyAlgorithm, update: bool) -> Arc<FixedKey> {
    let (material, spki) = match algorithm {
        KeyAlgorithm::Rsa2048 => {
            let path = golden_dir().join(format!("keys/{label}.pem"));
            if !path.exists() {
                assert!(update, "{} is missing: run `cargo xtask golden`", path.display());
                let pkey = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
            }
            let pkey = PKey::private_key_from_pem(&std::fs::read(&path).unwrap()).unwrap();
            let spki = pkey.public_key_to_der().unwrap();
            (Material::Rsa(pkey), spki)
        }
        KeyAlgorithm::EcP384 => {
            use p384::pkcs8::EncodePublicKey;
            let mut n = 0;
            let key = loop {
                // A 48-byte hash is below the group order but for a vanishing fraction of labels.
                if let Ok(k) = p384::ecdsa::SigningKey::from_slice(&derive(&format!("{label}#{n}"), 48)) {
                    break k;
                }
                n += 1;
            };
            let spki = key.verifying_key().to_public_key_der().unwrap().as_bytes().to_vec();
            (Material::P384(key), spki)
        }
        KeyAlgorithm::MlDsa65 => {
            let seed = derive(label, 32);
            let public = ca::mldsa::SigningKey::from_seed(&seed).unwrap();
            let spki = ca::mldsa::spki_der(public.public_key()).unwrap();
            let xi = ml_dsa::Seed::try_from(seed.as_slice()).unwrap();
            (Material::MlDsa(Box::new(ml_dsa::ExpandedSigningKey::from_seed(&xi))), spki)
        }
        other => panic!("no golden keys of {other:?}"),
    };
    assert_eq!(KeyAlgorithm::of_spki(&spki).unwrap(), algorithm, "{label}");
    Arc::new(FixedKey { label: label.to_owned(), algorithm, spki, material })
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A fixed, positive 16-byte serial: set, hierarchy and role in the first bytes.
fn serial(set: u8, purpose: Purpose, role: u8) -> Vec<u8> {
    let mut s = vec![0x40, set, purpose as u8, role];
    s.extend_from_slice(&[0x5a; 11]);
    s.push(role);
    s
}

/// One family of vectors: the CA keys' algorithm, the subjects' algorithm, the hierarchies.
struct Set {
    name: &'static str,
    ca: KeyAlgorithm,
    subject: KeyAlgorithm,
    purposes: &'static [Purpose],
}

const SETS: &[Set] = &[
    Set {
        name: "rsa2048",
        ca: KeyAlgorithm::Rsa2048,
        subject: KeyAlgorithm::Rsa2048,
        purposes: &[Purpose::Signature, Purpose::Authentication],
    },
    Set { name: "p384", ca: KeyAlgorithm::EcP384, subject: KeyAlgorithm::EcP384, purposes: &[Purpose::Signature] },
    Set {
        name: "ml-dsa-65",
        ca: KeyAlgorithm::MlDsa65,
        subject: KeyAlgorithm::EcP384,
        purposes: &[Purpose::Signature],
    },
];

/// Every vector, by path under `tests/golden/`.
fn generate(update: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (i, set) in SETS.iter().enumerate() {
        let set_no = i as u8 + 1;
        for &purpose in set.purposes {
            let root_id = CaId::root(purpose, Environment::Test);
            let ca_id = CaId::issuing(purpose, Environment::Test, "13").unwrap();
            let (root_slug, ca_slug) = (root_id.slug(), ca_id.slug());
            let root_key = key(&format!("{}-{root_slug}", set.name), set.ca, update);
            let ca_key = key(&format!("{}-{ca_slug}", set.name), set.ca, update);
            let responder_key = key(&format!("{}-{ca_slug}-ocsp", set.name), set.ca, update);
            let ee_key = key(&format!("{}-{ca_slug}-ee", set.name), set.subject, update);
            let mut put = |name: String, der: Vec<u8>| {
                out.insert(format!("{}/{name}", set.name), der);
            };

            // Root and issuing CA: ten years from NOW (as `Authority::certify_generation`).
            let ten_years = at(NOW) + time::Duration::days(3653);
            let root_name = root_id.name().unwrap();
            let root = prepare(
                RootCa { name: root_name.clone(), path_len: None },
                &serial(set_no, purpose, 1),
                at(NOW),
                ten_years,
                root_key.public_key_der(),
                root_key.as_ref(),
            )
            .unwrap()
            .sign(root_key.as_ref())
            .unwrap();
            let arl_url = ca::authority::arl_url(BASE, &root_slug, 1);
            let ca_name = ca_id.name().unwrap();
            let issuing = prepare(
                IssuingCa { issuer: root_name.clone(), subject: ca_name.clone(), policy: ca_id.policy(), arl_url },
                &serial(set_no, purpose, 2),
                at(NOW),
                ten_years,
                ca_key.public_key_der(),
                root_key.as_ref(),
            )
            .unwrap()
            .sign(root_key.as_ref())
            .unwrap();

            // The issuing CA's delegated OCSP responder: 30 days.
            let responder_cert = prepare(
                OcspResponder {
                    issuer: ca_name.clone(),
                    subject: format!("CN=OCSP responder {ca_slug} g1,O=JPKI,C=JP").parse().unwrap(),
                },
                &serial(set_no, purpose, 3),
                at(NOW),
                at(NOW) + time::Duration::days(30),
                responder_key.public_key_der(),
                ca_key.as_ref(),
            )
            .unwrap()
            .sign(ca_key.as_ref())
            .unwrap();

            // End entities: validity from the resident's birthday and card (jpki.md §1.4).
            let dob = date!(1990 - 05 - 15);
            let auth_end = not_after(&ValidityInput {
                date_of_birth: dob,
                now: at(NOW),
                card_expiry: date!(2035 - 05 - 15),
                auth_not_after: None,
            })
            .unwrap();
            let urls = StatusUrls {
                crl: ca::authority::crl_url(BASE, &ca_slug, 1, 0),
                ocsp: format!("{BASE}/ocsp"),
                ca_issuers: Some(ca::authority::ca_issuers_url(BASE, &ca_slug, 1)),
            };
            let ee = |role: u8, issuance_id: &str| -> Vec<u8> {
                let s = serial(set_no, purpose, role);
                match purpose {
                    Purpose::Signature => {
                        let end = not_after(&ValidityInput {
                            date_of_birth: dob,
                            now: at(NOW),
                            card_expiry: date!(2035 - 05 - 15),
                            auth_not_after: Some(auth_end),
                        })
                        .unwrap();
                        let profile = SignatureCert {
                            issuer: ca_name.clone(),
                            subject: SignatureCert::subject_name("東京都", "千代田区", issuance_id).unwrap(),
                            items: SanItems {
                                name: NAME.into(),
                                name_flags: "0".repeat(NAME.chars().count()),
                                sex: 2,
                                date_of_birth: dob,
                                address: ADDRESS.into(),
                                address_flags: "0".repeat(ADDRESS.chars().count()),
                            },
                            policy: ca_id.policy(),
                            urls: urls.clone(),
                        };
                        prepare(profile, &s, at(NOW), end, ee_key.public_key_der(), ca_key.as_ref())
                            .unwrap()
                            .sign(ca_key.as_ref())
                            .unwrap()
                    }
                    Purpose::Authentication => {
                        let profile = AuthenticationCert {
                            issuer: ca_name.clone(),
                            subject: AuthenticationCert::subject_name(issuance_id).unwrap(),
                            policy: ca_id.policy(),
                            urls: urls.clone(),
                        };
                        prepare(profile, &s, at(NOW), auth_end, ee_key.public_key_der(), ca_key.as_ref())
                            .unwrap()
                            .sign(ca_key.as_ref())
                            .unwrap()
                    }
                }
            };
            let good = ee(4, &format!("GOLDEN{set_no}{}GOOD", purpose as u8));
            let revoked = ee(5, &format!("GOLDEN{set_no}{}REVOKED", purpose as u8));

            // The issuing CA's shard 0 with the revoked certificate; the root's ARL, empty.
            let revoked_serial = serial(set_no, purpose, 5);
            let crl_params = CrlParams {
                issuer: ca_name.clone(),
                issuer_key_id: key_identifier(ca_key.public_key_der()).unwrap().to_vec(),
                number: 1,
                this_update: PUBLISHED_AT,
                next_update: PUBLISHED_AT + CRL_HOURS * 3600,
                scope: Scope::Shard { url: urls.crl.clone() },
            };
            let entry = Entry { serial: &revoked_serial, revoked_at: REVOKED_AT, reason: Reason::KeyCompromise };
            let crl = ca::crl::build(&crl_params, ca_key.as_ref(), &[entry]).unwrap();
            let arl_params = CrlParams {
                issuer: root_name.clone(),
                issuer_key_id: key_identifier(root_key.public_key_der()).unwrap().to_vec(),
                number: 1,
                this_update: PUBLISHED_AT,
                next_update: PUBLISHED_AT + CRL_HOURS * 3600,
                scope: Scope::Authorities { url: ca::authority::arl_url(BASE, &root_slug, 1) },
            };
            let arl = ca::crl::build(&arl_params, root_key.as_ref(), &[]).unwrap();

            // OCSP: good (SHA-1 CertID, what most clients send), revoked (SHA-256), unknown.
            let issuer_cert = Certificate::from_der(&issuing).unwrap();
            let responder = Responder::new(responder_key.clone(), &responder_cert).unwrap();
            let ocsp = |alg: Alg, role: u8, status: Status| -> Vec<u8> {
                let id = cert_id(alg, &issuer_cert, &serial(set_no, purpose, role)).unwrap();
                let single = single_response(id, status, PUBLISHED_AT, OCSP_VALIDITY).unwrap();
                signed_response(&responder, vec![single], None, PUBLISHED_AT).unwrap()
            };
            let p = match purpose {
                Purpose::Signature => "sign",
                Purpose::Authentication => "auth",
            };
            put(format!("{p}-root.der"), root);
            put(format!("{p}-ca.der"), issuing);
            put(format!("{p}-ocsp-responder.der"), responder_cert);
            put(format!("{p}-ee.der"), good);
            put(format!("{p}-ee-revoked.der"), revoked);
            put(format!("{p}-ca.crl"), crl);
            put(format!("{p}-root.arl"), arl);
            put(format!("{p}-ee.ocsp"), ocsp(Alg::Sha1, 4, Status::Good));
            put(
                format!("{p}-ee-revoked.ocsp"),
                ocsp(Alg::Sha256, 5, Status::Revoked { at: REVOKED_AT, reason: Reason::KeyCompromise }),
            );
            put(format!("{p}-unknown.ocsp"), ocsp(Alg::Sha1, 6, Status::Unknown));
        }
    }
    out
}

/// `JPKI_GOLDEN_UPDATE=1` (`cargo xtask golden`) rewrites the vectors; otherwise they must match.
#[test]
fn golden_vectors_are_reproduced_byte_for_byte_and_independently_valid() {
    let update = std::env::var_os("JPKI_GOLDEN_UPDATE").is_some_and(|v| v == "1");
    let dir = golden_dir();
    let fresh = generate(update);
    assert_eq!(fresh, generate(false), "two runs of the generator differ: something is not deterministic");

    // Committed vector files (the keys and the README are inputs, not vectors).
    let mut committed = BTreeMap::new();
    for set in SETS {
        let Ok(entries) = std::fs::read_dir(dir.join(set.name)) else { continue };
        for e in entries {
            let e = e.unwrap();
            committed.insert(format!("{}/{}", set.name, e.file_name().to_string_lossy()), e.path());
        }
    }
    // The fresh files are checked by independent tools before anything is written (in check
    // mode they are then found equal to the committed ones, so those are the files checked).
    let checked = tempfile::tempdir().unwrap();
    for (name, der) in &fresh {
        let path = checked.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, der).unwrap();
    }
    for set in SETS {
        for &purpose in set.purposes {
            check_with_openssl(&checked.path().join(set.name), purpose, set.ca != KeyAlgorithm::MlDsa65);
        }
    }
    check_mldsa_with_cryptography(&checked.path().join("ml-dsa-65"));

    if update {
        for (name, path) in &committed {
            if !fresh.contains_key(name) {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, der) in &fresh {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            if std::fs::read(&path).ok().as_ref() != Some(der) {
                std::fs::write(&path, der).unwrap();
                println!("wrote {name}");
            }
        }
    } else {
        let mut diffs = Vec::new();
        for (name, der) in &fresh {
            match std::fs::read(dir.join(name)) {
                Err(_) => diffs.push(format!("{name}: not committed")),
                Ok(old) if &old != der => {
                    let at = old.iter().zip(der).position(|(a, b)| a != b).unwrap_or(old.len().min(der.len()));
                    diffs.push(format!(
                        "{name}: differs from byte {at} (committed {} bytes, generated {} bytes)",
                        old.len(),
                        der.len()
                    ));
                }
                Ok(_) => {}
            }
        }
        for name in committed.keys().filter(|n| !fresh.contains_key(*n)) {
            diffs.push(format!("{name}: committed but no longer generated"));
        }
        assert!(
            diffs.is_empty(),
            "the golden vectors differ from tests/golden (run `cargo xtask golden` if the change is \
             intended, and review the diff):\n  {}",
            diffs.join("\n  ")
        );
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().expect("the openssl CLI (apt-get install openssl)");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

fn ok(args: &[&str]) -> String {
    let (success, text) = openssl(args);
    assert!(success, "openssl {} failed:\n{text}", args.join(" "));
    text
}

/// Every file parses with openssl; if `verify` (OpenSSL 3.0 has no ML-DSA), the chain verifies
/// with both CRLs checked, the revoked certificate is refused as revoked, each CRL's signature
/// verifies, and each OCSP response verifies and says good, revoked (keyCompromise) and unknown.
fn check_with_openssl(dir: &Path, purpose: Purpose, verify: bool) {
    let p = match purpose {
        Purpose::Signature => "sign",
        Purpose::Authentication => "auth",
    };
    let tmp = tempfile::tempdir().unwrap();
    let f = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let pem = |name: &str, kind: &str| -> String {
        let out = tmp.path().join(format!("{name}.pem")).to_string_lossy().into_owned();
        ok(&[kind, "-inform", "DER", "-in", &f(name), "-out", &out]);
        out
    };
    let root = pem(&format!("{p}-root.der"), "x509");
    let ca = pem(&format!("{p}-ca.der"), "x509");
    let responder = pem(&format!("{p}-ocsp-responder.der"), "x509");
    let ee = pem(&format!("{p}-ee.der"), "x509");
    let revoked = pem(&format!("{p}-ee-revoked.der"), "x509");
    let crl = pem(&format!("{p}-ca.crl"), "crl");
    let arl = pem(&format!("{p}-root.arl"), "crl");
    let text = ok(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(text.contains("Key Compromise"), "{text}");
    for name in ["ee", "ee-revoked", "unknown"] {
        ok(&["ocsp", "-respin", &f(&format!("{p}-{name}.ocsp")), "-noverify", "-resp_text"]);
    }
    if !verify {
        return;
    }
    let attime = CHECK_AT.to_string();
    let chain = tmp.path().join("chain.pem");
    let both = format!("{}{}", std::fs::read_to_string(&root).unwrap(), std::fs::read_to_string(&ca).unwrap());
    std::fs::write(&chain, both).unwrap();
    let chain = chain.to_string_lossy().into_owned();

    // Each certificate's chain, with its status from the CRL that covers it (the issuing CA's
    // shard for end entities, the root's ARL for the issuing CA; `-crl_check` checks the leaf:
    // a root is covered by no CRL, and the responder carries ocsp-nocheck and no CRL DP).
    let verify = |cert: &str, crl: Option<&str>| -> (bool, String) {
        let mut args = vec!["verify", "-attime", &attime, "-CAfile", &root, "-untrusted", &ca];
        if let Some(crl) = crl {
            args.extend(["-crl_check", "-CRLfile", crl]);
        }
        args.push(cert);
        openssl(&args)
    };
    for (cert, crl) in [(&ca, Some(&arl)), (&ee, Some(&crl)), (&responder, None), (&revoked, None)] {
        let (success, text) = verify(cert, crl.map(String::as_str));
        assert!(success && text.contains(": OK"), "{cert}: {text}");
    }
    let (success, text) = verify(&revoked, Some(&crl));
    assert!(!success && text.contains("certificate revoked"), "{text}");

    for (crl, issuer) in [(&crl, &ca), (&arl, &root)] {
        assert!(ok(&["crl", "-in", crl, "-noout", "-CAfile", issuer]).contains("verify OK"));
    }

    // `openssl ocsp` checks thisUpdate/nextUpdate against the real clock, not `-attime`: the
    // vectors are at a fixed clock, so the window it accepts is widened to a century.
    let window = ["-validity_period", "3155760000"];
    for (name, cert, want) in [("ee", &ee, "good"), ("ee-revoked", &revoked, "revoked"), ("unknown", &ee, "unknown")] {
        let resp = f(&format!("{p}-{name}.ocsp"));
        let mut args = vec!["ocsp", "-respin", &resp, "-CAfile", &chain, "-issuer", &ca, "-no_nonce"];
        args.extend(["-attime", &attime]);
        args.extend(window);
        let text = ok(&[&args[..], &["-resp_text"]].concat());
        assert!(text.contains("Response verify OK"), "{name}: {text}");
        let status = format!("Cert Status: {want}");
        assert!(text.contains(&status), "{name}: want {status}:\n{text}");
        if want == "revoked" {
            assert!(text.contains("Revocation Reason: keyCompromise"), "{text}");
        }
        if name != "unknown" {
            // The response is about this very certificate (issuer hashes and serial).
            // (The revoked one's CertID is SHA-256: `-sha256` makes openssl look for that.)
            let digest = if want == "revoked" { "-sha256" } else { "-sha1" };
            let text = ok(&[&args[..], &[digest, "-cert", cert]].concat());
            assert!(text.contains(&format!("{cert}: {want}")) && !text.contains("WARNING"), "{name}: {text}");
        }
    }
}

/// The ML-DSA-65 vectors' signatures and chain, checked by pyca/cryptography 50.0.0 (which
/// verifies ML-DSA X.509; OpenSSL 3.0 cannot), from the venv `cargo xtask oracles` installs.
fn check_mldsa_with_cryptography(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = root.join("target/oracles/venv/bin/python");
    assert!(python.exists(), "the ML-DSA oracle is not installed in {}: run `cargo xtask oracles`", python.display());
    let script = root.join("tests/python/x509check.py");
    let f = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let run = |args: &[&str]| {
        let o = Command::new(&python).arg(&script).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success() && text.starts_with("OK"), "x509check.py {}: {text}", args.join(" "));
        text
    };
    run(&["cert", &f("sign-root.der"), &f("sign-root.der")]);
    run(&["cert", &f("sign-root.der"), &f("sign-ca.der")]);
    run(&["cert", &f("sign-ca.der"), &f("sign-ocsp-responder.der")]);
    run(&["cert", &f("sign-ca.der"), &f("sign-ee.der")]);
    run(&["chain", &f("sign-root.der"), &f("sign-ca.der"), &f("sign-ee.der"), &CHECK_AT.to_string()]);
    let revoked_serial = hex::encode(serial(3, Purpose::Signature, 5));
    run(&["crl", &f("sign-ca.der"), &f("sign-ca.crl"), &revoked_serial]);
    run(&["crl", &f("sign-root.der"), &f("sign-root.arl")]);
    for (name, want) in
        [("sign-ee.ocsp", "GOOD"), ("sign-ee-revoked.ocsp", "REVOKED"), ("sign-unknown.ocsp", "UNKNOWN")]
    {
        let text = run(&["ocsp", &f("sign-ca.der"), &f(name)]);
        assert!(text.to_uppercase().contains(want), "{name}: {text}");
    }
}
