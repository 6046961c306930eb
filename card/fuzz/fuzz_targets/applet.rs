//! The virtual card's APDU handler: any sequence of APDUs (each prefixed by a one-byte length)
//! against a blank card and against a card whose personalisation is open. The card must never
//! panic, always answer with a status word, and never leak the private key: no answer may
//! contain the PKCS#8 bytes of a key it holds.
#![no_main]

use card::applet::{Applet, CardState};
use libfuzzer_sys::fuzz_target;

fn run(applet: &mut Applet, mut data: &[u8]) {
    while let Some((&len, rest)) = data.split_first() {
        let n = usize::from(len).min(rest.len());
        let (apdu, tail) = rest.split_at(n);
        data = tail;
        if apdu == [0xFF] {
            applet.reset();
            continue;
        }
        let r = applet.process(apdu);
        assert!(r.len() >= 2, "no status word");
        for k in applet.state().keys.values() {
            let der = hex::decode(&k.pkcs8).expect("hex");
            // The RSA private exponent region is deep inside; any 32-byte window would do.
            let probe = &der[der.len() - 32..];
            assert!(!r.windows(32).any(|w| w == probe), "private key bytes in an answer");
        }
        let _ = applet.take_dirty();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut blank = Applet::new(CardState::blank(&[7; 32]).expect("blank card"));
    run(&mut blank, data);
    // Personalisation open and the issuer authenticated: the richest state to fuzz.
    let mut open = Applet::new(CardState::blank(&[7; 32]).expect("blank card"));
    let ch = open.process(&[0x00, 0x84, 0x00, 0x00, 0x10]);
    let serial = hex::decode(&open.state().serial).expect("hex");
    let key = card::applet::card_issuer_key(&[7; 32], &serial).expect("hmac");
    let mac = card::applet::issuer_mac(&key, &ch[..16], &serial).expect("hmac");
    let mut auth = vec![0x00, 0x82, 0x00, 0x00, mac.len() as u8];
    auth.extend_from_slice(&mac);
    assert_eq!(open.process(&auth), [0x90, 0x00]);
    assert_eq!(open.process(&[0x80, 0x10, 0x00, 0x00]), [0x90, 0x00]);
    run(&mut open, data);
});
