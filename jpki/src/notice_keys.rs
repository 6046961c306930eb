//! TODO(net): the notice keys of the jpki binary — the ONE place to replace.
//!
//! Every municipality must sign its change notices and every replica must verify them
//! (`identity::notice_sig`). The real signer and verifier (X.509 certificates issued by the
//! network CA to each municipality for its notice key) come from the `net` crate, which is
//! not merged yet. Until then this uses identity's HMAC TEST DOUBLE (`identity::test_keys`,
//! feature `test-keys`, enabled for jpki in jpki/Cargo.toml) under a fixed, public CA seed:
//! it provides NO security — anyone can compute every key. Replace [`signer`], [`verifier`]
//! and [`admit`] with `net`'s implementation and drop the `test-keys` feature from jpki.

use std::sync::Arc;

use identity::ids::LgCode;
use identity::notice_sig::{NoticeKeyCert, NoticeSigner, NoticeVerifier};
use identity::store::Db;
use identity::test_keys::TestNetworkCa;

/// TODO(net): public placeholder — not a secret.
const PLACEHOLDER_CA_SEED: &str = "jpki-placeholder-network-ca (TODO net: not a secret)";

fn ca() -> TestNetworkCa {
    TestNetworkCa::new(PLACEHOLDER_CA_SEED)
}

/// The notice key a municipality node signs with.
pub fn signer(code: &LgCode) -> Arc<dyn NoticeSigner> {
    ca().issue(code, "1")
}

/// The verifier a replica node checks notice keys and signatures with.
pub fn verifier() -> Arc<dyn NoticeVerifier> {
    ca().verifier()
}

/// Stores the notice key of `code` at the replica `db` without fetching it from a peer (for
/// the bench and the demo, which hand notices to `replica::apply_batch` directly).
pub async fn admit(db: &Db, code: &LgCode) -> identity::Result<()> {
    let k = signer(code);
    let cert = NoticeKeyCert { key_id: k.key_id().to_owned(), cert: k.key_cert().to_vec() };
    identity::replica::admit_keys(db, verifier().as_ref(), code, &[cert], identity::http::now()).await?;
    Ok(())
}
