//! Residence certificates (住民票の写し) as signed PDFs (issue 15, docs/resdoc.md): a one-page
//! PDF with a visible Japanese rendering of the record in an embedded, subset font (IPAex
//! Gothic from Debian's `fonts-ipaexfont-gothic`), signed by the issuing municipality with
//! PAdES baseline B-B (ETSI EN 319 142-1): `/SubFilter /ETSI.CAdES.detached`, a `/ByteRange`
//! over the whole file but the `/Contents` slot, and in the slot a detached CMS SignedData with
//! the signed attributes contentType, messageDigest and ESS signing-certificate-v2 (built by
//! `card::cms_sign`, signed through a [`DocumentSigner`], e.g. a `ca` key backend holding the
//! key of the municipality's document-signing certificate from the organisation CA).
//!
//! ```text
//! let font = Font::load_default()?;                       // once
//! let pdf = issue(&record, &IssueOptions::new(&font, now), &signer, &chain)?;
//! ```
//!
//! [`prepare`] (build the PDF with an empty signature slot) and [`Prepared::sign`] are the two
//! halves of [`issue`], for callers that sign elsewhere and for the benchmark.

mod error;
mod font;
mod page;

use std::fmt;

use ca::key::KeyBackend;
use card::cms_sign::{self, Attributes, Content, HashAlg};
use der::Encode;
use identity::ids::ResidentCode;
use identity::person::Sex;
use lopdf::{Document, Object, StringFormat, dictionary};
use sha2::Digest;
use time::{Date, OffsetDateTime};
use x509_cert::Certificate;

pub use error::{Error, Result};
pub use font::{DEFAULT_FONT, Font};
pub use page::wareki;

/// Bytes reserved for the CMS SignedData in `/Contents` (hex-encoded: twice as many characters).
/// A P-384 chain of two certificates signs in about 2 KB; an RSA-4096 chain of three in about
/// 5 KB.
pub const SIGNATURE_SLOT: usize = 12 * 1024;

/// Longest name, in characters.
pub const MAX_NAME: usize = 64;
/// Longest address, in characters.
pub const MAX_ADDRESS: usize = 160;
/// Longest municipality name, in characters.
pub const MAX_MUNICIPALITY: usize = 32;

/// The items of a residence record a certificate shows.
#[derive(Clone, PartialEq, Eq)]
pub struct ResidenceRecord {
    /// 氏名.
    pub name: String,
    /// 住所.
    pub address: String,
    /// 生年月日.
    pub date_of_birth: Date,
    /// 性別.
    pub sex: Sex,
    /// 住民票コード: shown only when [`IssueOptions::show_resident_code`] asks for it.
    pub resident_code: Option<ResidentCode>,
    /// The date of issue (証明日).
    pub issue_date: Date,
    /// The issuing municipality as written (`東京都千代田区`); the page is signed by its 長.
    pub municipality: String,
}

/// No personal data in debug output (logs): only the municipality.
impl fmt::Debug for ResidenceRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResidenceRecord").field("municipality", &self.municipality).finish_non_exhaustive()
    }
}

/// The label of 性別 on the page.
pub fn sex_label(sex: Sex) -> &'static str {
    match sex {
        Sex::Male => "男",
        Sex::Female => "女",
        Sex::NotApplicable => "記載なし",
    }
}

/// How to issue.
#[derive(Debug, Clone, Copy)]
pub struct IssueOptions<'a> {
    /// The embedded font.
    pub font: &'a Font,
    /// Show the 住民票コード (only if the resident asked for it).
    pub show_resident_code: bool,
    /// The claimed signing time (unix seconds; the signature dictionary's `/M`).
    pub signing_time: i64,
}

impl<'a> IssueOptions<'a> {
    /// Without the resident code, signed at `signing_time`.
    pub fn new(font: &'a Font, signing_time: i64) -> Self {
        Self { font, show_resident_code: false, signing_time }
    }
}

/// What signs a residence certificate: the municipality's document-signing key. It signs a
/// digest (SHA-256 for RSA, SHA-384 for P-384 keys) as [`KeyBackend::sign_digest`] does.
pub trait DocumentSigner: Send + Sync + fmt::Debug {
    /// The key's SubjectPublicKeyInfo, DER (checked against the certificate's).
    fn public_key_der(&self) -> &[u8];
    /// Signs `digest`: PKCS#1 v1.5 bytes or a DER ECDSA-Sig-Value.
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>>;
}

/// A `ca` key backend (software key or PKCS#11) as a [`DocumentSigner`].
#[derive(Debug, Clone, Copy)]
pub struct KeySigner<'a>(pub &'a dyn KeyBackend);

impl DocumentSigner for KeySigner<'_> {
    fn public_key_der(&self) -> &[u8] {
        self.0.public_key_der()
    }
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>> {
        self.0.sign_digest(digest).map_err(|e| Error::Sign(e.to_string()))
    }
}

fn check_text(field: &'static str, text: &str, max: usize, font: &Font) -> Result<()> {
    let n = text.chars().count();
    if n == 0 || n > max {
        return Err(Error::Invalid { field, reason: format!("{n} characters (1–{max})") });
    }
    if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| c.is_control() || is_format(*c)) {
        return Err(Error::Invalid {
            field,
            reason: format!("control or format character U+{:04X} at {}", u32::from(c), i + 1),
        });
    }
    if let Some((i, c)) = text.chars().enumerate().find(|(_, c)| !font.has(*c)) {
        return Err(Error::Unrenderable { field, position: i + 1, code_point: u32::from(c) });
    }
    Ok(())
}

/// Bidirectional and other invisible formatting characters that would make the page read
/// differently from the record.
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// A document built with an empty signature slot, its byte range fixed.
#[derive(Clone)]
pub struct Prepared {
    bytes: Vec<u8>,
    /// `<` and one past `>` of the `/Contents` hex string.
    slot: (usize, usize),
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared").field("bytes", &self.bytes.len()).field("slot", &self.slot).finish()
    }
}

/// `D:YYYYMMDDHHmmSSZ` (PDF 32000-1 §7.9.4).
fn pdf_date(t: OffsetDateTime) -> String {
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Builds the PDF of `record` with an empty signature slot (the whole document but the
/// signature): checks every field first (length, control characters, a glyph for every
/// character), so a record the font cannot show is refused before anything is built.
pub fn prepare(record: &ResidenceRecord, opts: &IssueOptions<'_>) -> Result<Prepared> {
    let font = opts.font;
    check_text("name", &record.name, MAX_NAME, font)?;
    check_text("address", &record.address, MAX_ADDRESS, font)?;
    check_text("municipality", &record.municipality, MAX_MUNICIPALITY, font)?;
    if record.date_of_birth > record.issue_date {
        return Err(Error::Invalid { field: "date of birth", reason: "after the date of issue".into() });
    }
    let signed_at = OffsetDateTime::from_unix_timestamp(opts.signing_time)
        .map_err(|_| Error::Invalid { field: "signing time", reason: "out of range".into() })?;

    let mut shaper = font::Shaper::new(font)?;
    let content = page::content(&mut shaper, record, opts.show_resident_code)?;
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font_id = shaper.embed(&mut doc)?;
    let mut stream = lopdf::Stream::new(lopdf::Dictionary::new(), content);
    stream.compress()?;
    let content_id = doc.add_object(stream);
    let page_id = doc.new_object_id();

    let sig_id = doc.add_object(dictionary! {
        "Type" => "Sig",
        "Filter" => "Adobe.PPKLite",
        "SubFilter" => "ETSI.CAdES.detached",
        "ByteRange" => vec![Object::Integer(0), Object::Integer(PLACEHOLDER), Object::Integer(PLACEHOLDER), Object::Integer(PLACEHOLDER)],
        "Contents" => Object::String(vec![0; SIGNATURE_SLOT], StringFormat::Hexadecimal),
        "M" => Object::String(pdf_date(signed_at).into_bytes(), StringFormat::Literal),
        "Reason" => lopdf::text_string("住民票の写しの証明"),
    });
    let field_id = doc.add_object(dictionary! {
        "Type" => "Annot",
        "Subtype" => "Widget",
        "FT" => "Sig",
        "T" => Object::String(b"Signature1".to_vec(), StringFormat::Literal),
        "V" => sig_id,
        "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
        "F" => 132,
        "P" => page_id,
    });
    doc.objects.insert(
        page_id,
        Object::Dictionary(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), Object::Real(page::PAGE[0]), Object::Real(page::PAGE[1])],
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            "Contents" => content_id,
            "Annots" => vec![Object::Reference(field_id)],
        }),
    );
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![Object::Reference(page_id)], "Count" => 1 }),
    );
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        "AcroForm" => dictionary! { "Fields" => vec![Object::Reference(field_id)], "SigFlags" => 3 },
    });
    let info = doc.add_object(dictionary! {
        "Title" => lopdf::text_string("住民票の写し"),
        "Producer" => Object::String(b"jpki resdoc".to_vec(), StringFormat::Literal),
        "CreationDate" => Object::String(pdf_date(signed_at).into_bytes(), StringFormat::Literal),
    });
    doc.trailer.set("Root", catalog);
    doc.trailer.set("Info", info);
    let id = sha2::Sha256::new()
        .chain_update(doc_fingerprint(&doc))
        .chain_update(opts.signing_time.to_be_bytes())
        .finalize();
    let id = Object::String(id[..16].to_vec(), StringFormat::Hexadecimal);
    doc.trailer.set("ID", vec![id.clone(), id]);

    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).map_err(|e| Error::Pdf(format!("writing: {e}")))?;
    fix_byte_range(bytes)
}

/// The content streams' bytes, for the document ID.
fn doc_fingerprint(doc: &Document) -> Vec<u8> {
    doc.objects.values().filter_map(|o| o.as_stream().ok()).flat_map(|s| s.content.iter().copied()).collect()
}

/// The ByteRange placeholder: ten digits, replaced in place by the real, space-padded numbers.
const PLACEHOLDER: i64 = 9_999_999_999;

/// Finds the one empty `/Contents` slot and the one ByteRange placeholder in the written file
/// and writes the byte range (everything but the slot, `<` and `>` included).
fn fix_byte_range(mut bytes: Vec<u8>) -> Result<Prepared> {
    let mut hole = Vec::with_capacity(SIGNATURE_SLOT * 2 + 2);
    hole.push(b'<');
    hole.resize(SIGNATURE_SLOT * 2 + 1, b'0');
    hole.push(b'>');
    let start = find_one(&bytes, &hole, "signature slot")?;
    let end = start + hole.len();
    let marker = format!("0 {PLACEHOLDER} {PLACEHOLDER} {PLACEHOLDER}");
    let at = find_one(&bytes, marker.as_bytes(), "byte range")?;
    let range = format!("0 {start} {end} {}", bytes.len() - end);
    if range.len() > marker.len() {
        return Err(Error::Pdf("the byte range does not fit its placeholder".into()));
    }
    let padded = format!("{range:<width$}", width = marker.len());
    bytes[at..at + marker.len()].copy_from_slice(padded.as_bytes());
    Ok(Prepared { bytes, slot: (start, end) })
}

fn find_one(hay: &[u8], needle: &[u8], what: &str) -> Result<usize> {
    let mut found = hay.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle).map(|(i, _)| i);
    match (found.next(), found.next()) {
        (Some(i), None) => Ok(i),
        _ => Err(Error::Pdf(format!("the {what} is not exactly once in the written file"))),
    }
}

impl Prepared {
    /// The bytes the signature covers (the file without the `/Contents` slot), in two parts.
    pub fn signed_ranges(&self) -> [&[u8]; 2] {
        [&self.bytes[..self.slot.0], &self.bytes[self.slot.1..]]
    }

    /// Signs with `signer`, whose certificate is `chain[0]` (the rest: its CA certificates, put
    /// in the CMS so a validator can build the path): the detached CMS SignedData over the
    /// byte range, written into the slot. Returns the signed PDF.
    pub fn sign(mut self, signer: &dyn DocumentSigner, chain: &[Certificate]) -> Result<Vec<u8>> {
        let (leaf, rest) = chain.split_first().ok_or(Error::Chain("empty".into()))?;
        let leaf_der = leaf.to_der().map_err(|e| Error::Chain(e.to_string()))?;
        let leaf_spki =
            leaf.tbs_certificate().subject_public_key_info().to_der().map_err(|e| Error::Chain(e.to_string()))?;
        if leaf_spki != signer.public_key_der() {
            return Err(Error::Chain("the signer's key is not the key of the first certificate".into()));
        }
        let rest = rest
            .iter()
            .map(|c| c.to_der())
            .collect::<der::Result<Vec<_>>>()
            .map_err(|e| Error::Chain(e.to_string()))?;
        let alg = HashAlg::for_cert(&leaf_der).map_err(|e| Error::Chain(e.to_string()))?;
        let digest = alg.digest(&self.signed_ranges());
        let attributes = Attributes { signing_time: None, signing_certificate_v2: true };
        let mut sign_error = None;
        let cms = cms_sign::build(Content::Detached(&digest), &leaf_der, &rest, attributes, |d| {
            signer.sign_digest(d).map_err(|e| {
                let m = card::Error::Malformed(e.to_string());
                sign_error = Some(e);
                m
            })
        });
        let cms = match (cms, sign_error) {
            (_, Some(e)) => return Err(e),
            (Ok(c), None) => c,
            (Err(e), None) => return Err(Error::Sign(e.to_string())),
        };
        if cms.len() > SIGNATURE_SLOT {
            return Err(Error::Sign(format!("the CMS is {} bytes; the slot holds {SIGNATURE_SLOT}", cms.len())));
        }
        let hex = hex::encode_upper(&cms);
        let at = self.slot.0 + 1;
        self.bytes[at..at + hex.len()].copy_from_slice(hex.as_bytes());
        Ok(self.bytes)
    }
}

/// Builds and signs the residence certificate of `record`: [`prepare`], then
/// [`Prepared::sign`]. `chain` is the signer's certificate first, then its CA certificates.
pub fn issue(
    record: &ResidenceRecord,
    opts: &IssueOptions<'_>,
    signer: &dyn DocumentSigner,
    chain: &[Certificate],
) -> Result<Vec<u8>> {
    prepare(record, opts)?.sign(signer, chain)
}
