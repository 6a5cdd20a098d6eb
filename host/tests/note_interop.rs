//! Interoperability of warden's checkpoint notes with an independent C2SP
//! signed-note implementation (`signed_note`, a port of Go's
//! `golang.org/x/mod/sumdb/note`), in both directions (issue 18).

use base64ct::{Base64, Encoding};
use ed25519_dalek::SigningKey;
use signed_note::{Note, StandardSigner, StandardVerifier, Verifier, VerifierList};
use warden_host::audit::note::{
    ED25519_TYPE, TreeHead, default_origin, sign_checkpoint, verifier_key, verify_checkpoint,
};
use warden_host::digest::Hash256;

fn head(key: &SigningKey) -> TreeHead {
    TreeHead {
        origin: default_origin(&key.verifying_key()),
        size: 1_000_003,
        root: Hash256::of(b"some root"),
    }
}

#[test]
fn a_warden_checkpoint_opens_with_the_go_note_port_and_the_vkeys_agree() {
    let key = SigningKey::from_bytes(&[3; 32]);
    let h = head(&key);
    let vkey = verifier_key(&h.origin, ED25519_TYPE, &key.verifying_key());
    assert_eq!(
        vkey,
        signed_note::new_ed25519_verifier_key(&h.origin, &key.verifying_key())
    );
    let text = sign_checkpoint(&h, &key).expect("signs");
    let note = Note::from_bytes(text.as_bytes()).expect("parses");
    let verifier = StandardVerifier::new(&vkey).expect("vkey");
    let list = VerifierList::new(vec![Box::new(verifier) as Box<dyn Verifier>]);
    let (verified, _) = note.verify(&list).expect("verifies");
    assert_eq!(verified.len(), 1);
    assert_eq!(note.text(), h.body().as_bytes());
    // A changed size no longer verifies there either.
    let forged = text.replacen("\n1000003\n", "\n1000002\n", 1);
    let note = Note::from_bytes(forged.as_bytes()).expect("parses");
    assert!(note.verify(&list).is_err());
}

#[test]
fn a_checkpoint_signed_by_the_go_note_port_verifies_in_warden() {
    let key = SigningKey::from_bytes(&[4; 32]);
    let h = head(&key);
    let mut material = vec![ED25519_TYPE];
    material.extend_from_slice(key.verifying_key().as_bytes());
    let id = signed_note::key_id(&h.origin, &material);
    let mut private = vec![ED25519_TYPE];
    private.extend_from_slice(&key.to_bytes());
    let skey = format!(
        "PRIVATE+KEY+{}+{id:08x}+{}",
        h.origin,
        Base64::encode_string(&private)
    );
    let signer = StandardSigner::new(&skey).expect("skey");
    let mut note = Note::new(h.body().as_bytes(), &[]).expect("note");
    note.add_sigs(&[&signer]).expect("signs");
    let bytes = note.to_bytes();
    let (_, back) =
        verify_checkpoint(&bytes, &key.verifying_key(), Some(&h.origin)).expect("verifies");
    assert_eq!(back, h);
    assert_eq!(
        String::from_utf8(bytes).expect("utf8"),
        sign_checkpoint(&h, &key).expect("signs"),
        "Ed25519 is deterministic: both produce the same bytes"
    );
}
