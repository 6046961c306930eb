//! IC cards through PC/SC: ISO 7816-4 APDUs ([`apdu`]), the JPKI application as a model
//! ([`jpki`]), the virtual card's applet ([`applet`]) and its vpcd transport ([`vpcd`]), and the
//! municipal window's card writer: JPKI commands over the `pcsc` crate ([`reader`]) and the
//! personalisation flow over them, with the CA service behind a trait ([`writer`]).

pub mod apdu;
pub mod applet;
pub mod cms_sign;
pub mod jpki;
pub mod reader;
pub mod vpcd;
pub mod writer;

use apdu::Status;

/// What can go wrong talking to a card.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// pcscd is not running.
    #[error("no PC/SC service (is pcscd running?): {0}")]
    NoService(pcsc::Error),
    /// No reader matches.
    #[error("no reader named {wanted:?}; readers: {available}")]
    NoReader {
        /// What was asked for.
        wanted: String,
        /// What there is.
        available: String,
    },
    /// No card in the reader.
    #[error("no card in reader {0:?} (waited {1} s)")]
    NoCard(String, u64),
    /// The card went away during an operation.
    #[error("the card was removed during {0}; nothing after the last acknowledged step was written")]
    Removed(String),
    /// A command failed.
    #[error("{op}: card answered {status}")]
    Card {
        /// What we were doing.
        op: String,
        /// Its answer.
        status: Status,
    },
    /// A PIN was wrong.
    #[error("wrong {pin}: {tries_left} tries left")]
    WrongPin {
        /// Which.
        pin: &'static str,
        /// Tries left.
        tries_left: u8,
    },
    /// A PIN is blocked.
    #[error("the {0} is blocked; it must be reset at the municipal window")]
    PinBlocked(&'static str),
    /// Issuer authentication refused.
    #[error("issuer authentication failed ({0} tries left on the card): wrong issuer key for this card")]
    IssuerAuth(u8),
    /// The CA service did not do what the writer asked (authenticate as the card's issuer, or
    /// issue the certificates), or answered something the writer cannot use.
    #[error("the CA service did not {op}: {source}{}", if *.wiped { "; the card was wiped back to blank" } else { "" })]
    Ca {
        /// What was asked.
        op: &'static str,
        /// Its answer.
        source: writer::CaError,
        /// A refused first issuance: the card went back to blank, nothing half-done on it.
        wiped: bool,
    },
    /// An order breaks its rules; caught before the reader is opened, so no card was touched.
    #[error("invalid {field}: {reason} (no card was touched)")]
    InvalidInput {
        /// Which input.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The card is in the wrong lifecycle state for the operation.
    #[error("card {serial} is {lifecycle}: {hint}")]
    WrongLifecycle {
        /// Card serial (hex).
        serial: String,
        /// Its state.
        lifecycle: jpki::Lifecycle,
        /// What to do instead.
        hint: &'static str,
    },
    /// The operation needs a PIN the order lacks (found only once the card is read: nothing
    /// was changed on it).
    #[error("{op} needs the resident's {pin}")]
    PinNeeded {
        /// The operation.
        op: &'static str,
        /// Which PIN.
        pin: &'static str,
    },
    /// SELECT of the JPKI application failed.
    #[error("not a JPKI card: selecting the JPKI application answered {0}")]
    NotJpki(Status),
    /// The card is already issued.
    #[error("the card is already issued (serial {0}); use `card renew` or `card pin-reset`")]
    AlreadyIssued(String),
    /// A previous personalisation was interrupted.
    #[error(
        "the card (serial {0}) was removed during an earlier personalisation; resume it with --resume or wipe it with `card wipe`"
    )]
    Interrupted(String),
    /// A file read back after personalisation is not what was written (personalisation is
    /// left open: resume or wipe the card).
    #[error("card {serial}: {file} read back differs from what was written; resume or wipe the card")]
    ReadBack {
        /// Card serial (hex).
        serial: String,
        /// Which file.
        file: String,
    },
    /// Anything the card said that makes no sense.
    #[error("malformed card answer: {0}")]
    Malformed(String),
    /// A PIN breaks its format.
    #[error(transparent)]
    PinFormat(#[from] jpki::PinFormatError),
    /// Card state file.
    #[error(transparent)]
    State(#[from] applet::StateError),
    /// PC/SC.
    #[error("PC/SC: {0}")]
    Pcsc(pcsc::Error),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// OpenSSL.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// DER.
    #[error("DER: {0}")]
    Der(#[from] der::Error),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable kind label for branching, exit codes and logs (no card data).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoService(_) => "no_service",
            Self::NoReader { .. } => "no_reader",
            Self::NoCard(..) => "no_card",
            Self::Removed(_) => "card_removed",
            Self::Card { .. } => "card_status",
            Self::WrongPin { .. } => "wrong_pin",
            Self::PinBlocked(_) => "pin_blocked",
            Self::IssuerAuth(_) => "issuer_auth",
            Self::Ca { .. } => "ca",
            Self::InvalidInput { .. } => "invalid_input",
            Self::WrongLifecycle { .. } => "wrong_lifecycle",
            Self::PinNeeded { .. } => "pin_needed",
            Self::NotJpki(_) => "not_jpki",
            Self::AlreadyIssued(_) => "already_issued",
            Self::Interrupted(_) => "interrupted",
            Self::ReadBack { .. } => "read_back",
            Self::Malformed(_) => "malformed",
            Self::PinFormat(_) => "pin_format",
            Self::State(_) => "state",
            Self::Pcsc(_) => "pcsc",
            Self::Io(_) => "io",
            Self::Openssl(_) => "openssl",
            Self::Der(_) => "der",
        }
    }
}
