//! Verification across a same-name root key rollover (issue 11): a root `g1` (RSA-2048) re-keyed
//! to `g2` (P-384) under the same name, with the two link certificates RFC 4210 §4.4 describes
//! (NewWithOld: g2's key certified by g1; OldWithNew: g1's key certified by g2). A relying party
//! that pins only one of the two keys must reach certificates under the other through the link,
//! choose issuers by key although every CA certificate here bears one name, and use a CRL signed
//! by the other key of the CA (RFC 5280 §6.3.3 (f)). Built with the CA crate's profiles, keys and
//! CRL encoder, at a fixed time. The link certificates are the CA's own [`LinkCa`] (cA without
//! pathLenConstraint, keyCertSign and cRLSign, anyPolicy, the signing generation's ARL).

use std::str::FromStr;

use ca::crl::{CrlParams, Entry, Reason, Scope};
use ca::key::{KeyAlgorithm, KeyBackend, SoftKey, key_identifier};
use ca::profile::{AuthenticationCert, LinkCa, RootCa, StatusUrls, prepare};
use x509_cert::name::Name;

use super::{Input, Revocation, Verdict, verify};

/// 2026-11-25T00:00:00Z: after both roots' notBefore, before every notAfter and nextUpdate.
const NOW: i64 = 1_795_478_400;
const DAY: i64 = 86_400;
const NAME: &str = "CN=JPKI Rollover Test Root,O=JPKI,C=JP";
const POLICY: &str = "1.2.392.200149.8.5.1.3.30";

fn url(path: &str) -> String {
    format!("http://crl.example.jp/root/{path}")
}

fn at(unix: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(unix).expect("a time")
}

/// One root generation: its key and self-signed certificate.
struct Generation {
    key: SoftKey,
    cert: Vec<u8>,
    /// `g1` or `g2`: names its CRLs' URLs.
    label: &'static str,
}

impl Generation {
    fn new(label: &'static str, algorithm: KeyAlgorithm, serial: u8, not_before: i64) -> Generation {
        let key = SoftKey::ephemeral(algorithm).expect("a key");
        let name = Name::from_str(NAME).expect("a name");
        let cert = prepare(
            RootCa { name, path_len: None },
            &[serial],
            at(not_before),
            at(NOW + 3650 * DAY),
            key.public_key_der(),
            &key,
        )
        .and_then(|p| p.sign(&key))
        .expect("a root");
        Generation { key, cert, label }
    }

    fn key_id(&self) -> Vec<u8> {
        key_identifier(self.key.public_key_der()).expect("a key identifier").to_vec()
    }

    fn shard_url(&self) -> String {
        url(&format!("{}/0.crl", self.label))
    }

    fn arl_url(&self) -> String {
        url(&format!("{}/arl.crl", self.label))
    }

    /// A link certificate certifying `subject`'s key under this generation's.
    fn link_to(&self, subject: &Generation, serial: u8) -> Vec<u8> {
        let name = Name::from_str(NAME).expect("a name");
        let profile = LinkCa { issuer: name.clone(), subject: name, arl_url: self.arl_url() };
        prepare(profile, &[serial], at(NOW - DAY), at(NOW + 3650 * DAY), subject.key.public_key_der(), &self.key)
            .and_then(|p| p.sign(&self.key))
            .expect("a link certificate")
    }

    /// An authentication certificate issued by this generation's key, in its shard 0.
    fn issue(&self, serial: u8) -> Vec<u8> {
        let subject_key = SoftKey::ephemeral(KeyAlgorithm::EcP384).expect("a key");
        let profile = AuthenticationCert {
            issuer: Name::from_str(NAME).expect("a name"),
            subject: AuthenticationCert::subject_name(&format!("{}-{serial}", self.label)).expect("a name"),
            policy: const_oid::ObjectIdentifier::new_unwrap(POLICY),
            urls: StatusUrls { crl: self.shard_url(), ocsp: "http://ocsp.example.jp".into(), ca_issuers: None },
        };
        prepare(profile, &[serial], at(NOW - DAY), at(NOW + 365 * DAY), subject_key.public_key_der(), &self.key)
            .and_then(|p| p.sign(&self.key))
            .expect("an end-entity certificate")
    }

    /// A CRL signed with this generation's key for `scope`'s certificates, listing `revoked`.
    fn crl(&self, scope: Scope, revoked: &[u8]) -> Vec<u8> {
        let params = CrlParams {
            issuer: Name::from_str(NAME).expect("a name"),
            issuer_key_id: self.key_id(),
            number: 1,
            this_update: NOW - 3600,
            next_update: NOW + DAY,
            scope,
        };
        let serials: Vec<[u8; 1]> = revoked.iter().map(|s| [*s]).collect();
        let entries: Vec<Entry<'_>> = serials
            .iter()
            .map(|s| Entry { serial: s, revoked_at: NOW - 7200, reason: Reason::KeyCompromise })
            .collect();
        ca::crl::build(&params, &self.key, &entries).expect("a CRL")
    }
}

/// The rollover: g1, g2, the links, and certificates under each key (serials 0x10 and up good,
/// 0x20 and up revoked).
struct Rollover {
    g1: Generation,
    g2: Generation,
    new_with_old: Vec<u8>,
    old_with_new: Vec<u8>,
}

impl Rollover {
    fn new() -> Rollover {
        let g1 = Generation::new("g1", KeyAlgorithm::Rsa2048, 1, NOW - 3650 * DAY);
        let g2 = Generation::new("g2", KeyAlgorithm::EcP384, 2, NOW - DAY);
        let new_with_old = g1.link_to(&g2, 3);
        let old_with_new = g2.link_to(&g1, 4);
        Rollover { g1, g2, new_with_old, old_with_new }
    }
}

fn check(anchor: &Generation, leaf: Vec<u8>, intermediates: Vec<Vec<u8>>, crls: Vec<Vec<u8>>) -> Verdict {
    let input = Input::new(leaf, vec![anchor.cert.clone()], intermediates, NOW as u64, Revocation::Crls(crls));
    verify(&input).expect("checkable input")
}

fn assert_valid(verdict: &Verdict, path_len: usize) {
    match verdict {
        Verdict::Valid { path } => assert_eq!(path.len(), path_len, "{path:?}"),
        Verdict::Invalid { reason } => panic!("expected valid, got invalid: {reason}"),
        Verdict::Unavailable { reason, .. } => panic!("expected valid, got status unavailable: {reason}"),
    }
}

fn assert_invalid(verdict: &Verdict, reason_contains: &str) {
    match verdict {
        Verdict::Invalid { reason } => assert!(reason.contains(reason_contains), "{reason}"),
        Verdict::Valid { path } => panic!("expected invalid ({reason_contains}), got valid: {path:?}"),
        Verdict::Unavailable { reason, .. } => {
            panic!("expected invalid ({reason_contains}), got unavailable: {reason}")
        }
    }
}

#[test]
fn the_old_anchor_reaches_the_new_key_through_new_with_old() {
    let r = Rollover::new();
    let (good, revoked) = (r.g2.issue(0x10), r.g2.issue(0x20));
    // g2's shard CRL, signed by g2's key; g1's ARL covers the link certificate g1 issued.
    let crls = vec![
        r.g2.crl(Scope::Shard { url: r.g2.shard_url() }, &[0x20]),
        r.g1.crl(Scope::Authorities { url: r.g1.arl_url() }, &[]),
    ];
    // Every CA certificate is offered; the one whose key signed is chosen, although all bear one
    // name (g2's self-signed certificate has no path to g1, OldWithNew leads back to g1's key).
    let all = vec![r.g2.cert.clone(), r.old_with_new.clone(), r.new_with_old.clone()];
    assert_valid(&check(&r.g1, good.clone(), all.clone(), crls.clone()), 3);
    assert_valid(&check(&r.g1, good, vec![r.new_with_old.clone()], crls.clone()), 3);
    assert_invalid(&check(&r.g1, revoked, all, crls), "CertificateRevokedEndEntity");
}

#[test]
fn the_new_anchor_reaches_the_old_key_through_old_with_new_with_a_crl_signed_by_the_new_key() {
    let r = Rollover::new();
    let (good, revoked) = (r.g1.issue(0x11), r.g1.issue(0x21));
    // After the rollover the new key signs the CRLs for the old key's certificates too: a CRL
    // signed by another key of the same CA, usable because that key is the anchor of the path
    // (RFC 5280 §6.3.3 (f)).
    let crls = vec![
        r.g2.crl(Scope::Shard { url: r.g1.shard_url() }, &[0x21]),
        r.g2.crl(Scope::Authorities { url: r.g2.arl_url() }, &[]),
    ];
    let all = vec![r.g1.cert.clone(), r.new_with_old.clone(), r.old_with_new.clone()];
    assert_valid(&check(&r.g2, good.clone(), all.clone(), crls.clone()), 3);
    assert_invalid(&check(&r.g2, revoked.clone(), all.clone(), crls), "CertificateRevokedEndEntity");
    // The old key's own CRL, signed by the issuer on the path, serves as well.
    let old_key_crls = vec![
        r.g1.crl(Scope::Shard { url: r.g1.shard_url() }, &[0x21]),
        r.g2.crl(Scope::Authorities { url: r.g2.arl_url() }, &[]),
    ];
    assert_valid(&check(&r.g2, good, all.clone(), old_key_crls.clone()), 3);
    assert_invalid(&check(&r.g2, revoked, all, old_key_crls), "CertificateRevokedEndEntity");
}

#[test]
fn a_crl_signed_by_the_new_key_is_used_through_the_link_that_certifies_it() {
    let r = Rollover::new();
    let (good, revoked) = (r.g2.issue(0x12), r.g2.issue(0x22));
    // Pinned g1; the link certificate's own status comes from an ARL signed by g2, whose key the
    // path certifies only through that link (its CRL issuer path is the path itself).
    let crls = vec![
        r.g2.crl(Scope::Shard { url: r.g2.shard_url() }, &[0x22]),
        r.g2.crl(Scope::Authorities { url: r.g1.arl_url() }, &[]),
    ];
    let links = vec![r.new_with_old.clone()];
    assert_valid(&check(&r.g1, good, links.clone(), crls.clone()), 3);
    assert_invalid(&check(&r.g1, revoked, links.clone(), crls), "CertificateRevokedEndEntity");
    // A revoked link certificate, on g1's ARL, breaks the path for everything under it.
    let crls = vec![
        r.g2.crl(Scope::Shard { url: r.g2.shard_url() }, &[]),
        r.g1.crl(Scope::Authorities { url: r.g1.arl_url() }, &[3]),
    ];
    assert_invalid(&check(&r.g1, r.g2.issue(0x13), links, crls), "CertificateRevokedIntermediateCa");
}

#[test]
fn a_crl_signed_by_a_same_name_key_without_a_path_to_the_anchor_is_not_used() {
    let r = Rollover::new();
    // A third key under the same name, self-signed, certified by neither g1 nor g2.
    let rogue = Generation::new("g1", KeyAlgorithm::EcP384, 9, NOW - DAY);
    let leaf = r.g1.issue(0x14);
    let crls = vec![
        rogue.crl(Scope::Shard { url: r.g1.shard_url() }, &[]),
        r.g2.crl(Scope::Authorities { url: r.g2.arl_url() }, &[]),
    ];
    let intermediates = vec![rogue.cert.clone(), r.old_with_new.clone()];
    assert_invalid(&check(&r.g2, leaf, intermediates, crls), "RevocationStatusNotDetermined");
}

#[test]
fn without_a_link_certificate_there_is_no_path() {
    let r = Rollover::new();
    let no_crls = Vec::new();
    assert_invalid(&check(&r.g1, r.g2.issue(0x15), vec![r.g2.cert.clone()], no_crls.clone()), "no path");
    assert_invalid(&check(&r.g2, r.g1.issue(0x16), vec![r.g1.cert.clone()], no_crls.clone()), "no path");
    // The link in the wrong direction does not help either.
    assert_invalid(&check(&r.g1, r.g2.issue(0x17), vec![r.old_with_new.clone()], no_crls), "no path");
}
