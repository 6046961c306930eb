//! コンビニ交付 (residence certificates at convenience-store kiosks; docs/kiosk.md): the
//! municipality node's check of a kiosk's card ([`check::CardCheck`], injected into
//! `identity::kiosk`'s routes by `jpki serve municipality`) and the kiosk's own client that
//! drives the resident's card through PC/SC ([`client`], `jpki kiosk issue`); the signed PDF
//! ([`document::PdfMaker`], `resdoc`) is made at the municipality node, never at the kiosk.

pub mod check;
pub mod client;
pub mod document;
