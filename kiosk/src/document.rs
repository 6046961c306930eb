//! The residence certificate a kiosk prints: the signed PDF of `resdoc` (page in an embedded
//! subset font, PAdES B-B), signed with the municipality's document-signing key from the
//! organisation CA. The key stays at the municipality node; the kiosk only receives the PDF.

use ca::key::SoftKey;
use identity::person::Record;
use resdoc::{Font, IssueOptions, KeySigner, ResidenceRecord};
use x509_cert::Certificate;

/// [`identity::kiosk::DocumentMaker`] with `resdoc`.
pub struct PdfMaker {
    font: Font,
    key: SoftKey,
    chain: Vec<Certificate>,
    municipality_name: String,
}

impl std::fmt::Debug for PdfMaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PdfMaker").field("municipality_name", &self.municipality_name).finish_non_exhaustive()
    }
}

impl PdfMaker {
    /// Signs with `key`, whose certificate is `chain[0]` (then its CA certificates), as the
    /// municipality written `municipality_name` (`東京都千代田区`), in the default font.
    pub fn new(key: SoftKey, chain: Vec<Certificate>, municipality_name: &str) -> Result<Self, String> {
        let font = Font::load_default().map_err(|e| e.to_string())?;
        if chain.is_empty() {
            return Err("the document-signing chain is empty".into());
        }
        Ok(Self { font, key, chain, municipality_name: municipality_name.to_owned() })
    }
}

impl identity::kiosk::DocumentMaker for PdfMaker {
    fn make(&self, record: &Record, issued_at: i64, with_resident_code: bool) -> Result<Vec<u8>, String> {
        let issue_date = time::OffsetDateTime::from_unix_timestamp(issued_at).map_err(|e| e.to_string())?.date();
        let doc = ResidenceRecord {
            name: record.items.name.text().to_owned(),
            address: record.items.address.text().to_owned(),
            date_of_birth: record.items.date_of_birth,
            sex: record.items.sex,
            resident_code: Some(record.resident_code.clone()),
            issue_date,
            municipality: self.municipality_name.clone(),
        };
        let mut opts = IssueOptions::new(&self.font, issued_at);
        opts.show_resident_code = with_resident_code;
        resdoc::issue(&doc, &opts, &KeySigner(&self.key), &self.chain).map_err(|e| e.to_string())
    }
}
