//! What can go wrong issuing a residence certificate. No message carries a value of the
//! record (name, address, resident code): a field is named, and a character by its position.

/// A residence-certificate error. `Invalid` and `Unrenderable` are the record's fault (tell
/// the clerk); the others are the deployment's (font, key, chain).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A field of the record, or an option, is not acceptable (the reason names no value).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field (`name`, `address`, …).
        field: &'static str,
        /// Why, without the value.
        reason: String,
    },
    /// A character the embedded font has no glyph for: the document would show a blank or a box,
    /// so it is not issued (a clerk may register the record with a substitute character).
    #[error("the {field} has a character the font cannot show (character {position}, U+{code_point:04X})")]
    Unrenderable {
        /// The field.
        field: &'static str,
        /// Its position in the field, from 1.
        position: usize,
        /// The code point.
        code_point: u32,
    },
    /// The font file.
    #[error("font: {0}")]
    Font(String),
    /// Building or writing the PDF.
    #[error("PDF: {0}")]
    Pdf(String),
    /// The signer's certificate chain.
    #[error("certificate chain: {0}")]
    Chain(String),
    /// The signature (CMS or the key).
    #[error("signing: {0}")]
    Sign(String),
}

impl Error {
    /// A stable name to branch on (`invalid`, `unrenderable`, `font`, `pdf`, `chain`, `sign`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid",
            Self::Unrenderable { .. } => "unrenderable",
            Self::Font(_) => "font",
            Self::Pdf(_) => "pdf",
            Self::Chain(_) => "chain",
            Self::Sign(_) => "sign",
        }
    }
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<lopdf::Error> for Error {
    fn from(e: lopdf::Error) -> Self {
        Self::Pdf(e.to_string())
    }
}
