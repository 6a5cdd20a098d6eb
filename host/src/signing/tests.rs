#![allow(clippy::unwrap_used)]

use super::trust::{Refusal, SignerPins, TrustStore, TrustedKey};
use super::*;
use std::path::Path;

/// A small but real component: one nested core module with a function
/// returning `value`, so different values give different digests.
pub(crate) fn sample_component(value: i32) -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, Component, FunctionSection, Module, ModuleSection, TypeSection, ValType,
    };
    let mut module = Module::new();
    let mut types = TypeSection::new();
    types.ty().function([], [ValType::I32]);
    module.section(&types);
    let mut functions = FunctionSection::new();
    functions.function(0);
    module.section(&functions);
    let mut code = CodeSection::new();
    let mut body = wasm_encoder::Function::new([]);
    body.instructions().i32_const(value).end();
    code.function(&body);
    module.section(&code);
    let mut component = Component::new();
    component.section(&ModuleSection(&module));
    component.finish()
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn trusted(name: &str, key: &SigningKey, capabilities: &[&str]) -> TrustedKey {
    TrustedKey {
        name: name.to_owned(),
        public_key: key.verifying_key(),
        capabilities: capabilities.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn store() -> TrustStore {
    TrustStore::from_keys(vec![
        trusted("dev", &key(1), &["echo", "pii-*"]),
        trusted("payments", &key(2), &["refund"]),
    ])
}

fn no_pins() -> SignerPins {
    SignerPins::default()
}

/// Offset of a byte inside the nested module's code (the i32.const operand).
fn code_byte_offset(component: &[u8]) -> usize {
    // The operand of `i32.const 42` is the byte 42 preceded by opcode 0x41.
    component
        .windows(2)
        .position(|w| w == [0x41, 42])
        .map(|p| p + 1)
        .unwrap()
}

#[test]
fn digest_is_sha256_of_the_component_without_signature_sections() {
    let component = sample_component(42);
    let expected = Hash256::of(&component);
    assert_eq!(digest(&component).unwrap(), expected);
    let signed = sign(&sign(&component, &key(1)).unwrap(), &key(2)).unwrap();
    assert_eq!(digest(&signed).unwrap(), expected);
    assert_eq!(strip(&signed).unwrap(), component);
    assert!(
        digest(&component)
            .unwrap()
            .to_string()
            .starts_with("sha256:")
    );
    assert_eq!(
        Hash256::parse(&expected.to_string()),
        Some(expected),
        "Display and parse round-trip"
    );
}

#[test]
fn each_signature_is_one_section_with_the_documented_payload() {
    let component = sample_component(42);
    let signed = sign(&component, &key(1)).unwrap();
    let tail = &signed[component.len()..];
    let name = SECTION_NAME.as_bytes();
    // id 0, size 148 as LEB128 (0x94 0x01), name length, name, payload
    assert_eq!(1 + name.len() + PAYLOAD_LEN, 148);
    assert_eq!(&tail[..3], &[0x00, 0x94, 0x01]);
    assert_eq!(usize::from(tail[3]), name.len());
    assert_eq!(&tail[4..4 + name.len()], name);
    let payload = &tail[4 + name.len()..];
    assert_eq!(payload.len(), PAYLOAD_LEN);
    assert_eq!(&payload[..3], &[1, 1, 1]);
    assert_eq!(&payload[3..35], key(1).verifying_key().as_bytes());
    assert_eq!(&payload[35..67], digest(&component).unwrap().as_bytes());
}

#[test]
fn signed_and_trusted_component_verifies() {
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    let verified = store().verify(&signed, "echo", &no_pins()).unwrap();
    assert_eq!(verified.signer, "dev");
    assert_eq!(verified.key_id, keys::key_id(&key(1).verifying_key()));
    assert_eq!(verified.digest, digest(&signed).unwrap().to_string());
    // Prefix patterns.
    store().verify(&signed, "pii-redact", &no_pins()).unwrap();
}

#[test]
fn unsigned_component_is_refused() {
    let err = store()
        .verify(&sample_component(42), "echo", &no_pins())
        .unwrap_err();
    assert_eq!(err, Refusal::Unsigned);
    assert!(err.to_string().contains("warden sign"));
}

#[test]
fn component_signed_by_an_unknown_key_is_refused() {
    let signed = sign(&sample_component(42), &key(9)).unwrap();
    let err = store().verify(&signed, "echo", &no_pins()).unwrap_err();
    assert_eq!(
        err,
        Refusal::UnknownKey {
            key_ids: vec![keys::key_id(&key(9).verifying_key())]
        }
    );
}

#[test]
fn key_trusted_for_another_capability_is_refused() {
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    for capability in ["refund", "pii", "echo2", "pi"] {
        let err = store().verify(&signed, capability, &no_pins()).unwrap_err();
        assert_eq!(
            err,
            Refusal::NotTrustedFor {
                key: "dev".into(),
                capability: capability.into()
            }
        );
    }
}

#[test]
fn flipped_code_byte_after_signing_is_refused_as_bad_signature() {
    let mut signed = sign(&sample_component(42), &key(1)).unwrap();
    let offset = code_byte_offset(&signed);
    signed[offset] ^= 0x01;
    let err = store().verify(&signed, "echo", &no_pins()).unwrap_err();
    assert!(
        matches!(&err, Refusal::BadSignature { key_id, problem }
            if *key_id == keys::key_id(&key(1).verifying_key()) && problem.contains("changed after signing")),
        "{err}"
    );
}

#[test]
fn any_single_flipped_byte_is_refused() {
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    for offset in 0..signed.len() {
        let mut tampered = signed.clone();
        tampered[offset] ^= 0x01;
        let result = store().verify(&tampered, "echo", &no_pins());
        assert!(result.is_err(), "flip at byte {offset} was accepted");
    }
}

#[test]
fn digest_pin_mismatch_is_refused() {
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    let other = digest(&sample_component(43)).unwrap().to_string();
    let pins = SignerPins {
        digest: Some(other.clone()),
        signers: vec![],
    };
    let err = store().verify(&signed, "echo", &pins).unwrap_err();
    assert_eq!(
        err,
        Refusal::DigestMismatch {
            pinned: other,
            actual: digest(&signed).unwrap().to_string()
        }
    );
    let pins = SignerPins {
        digest: Some(digest(&signed).unwrap().to_string()),
        signers: vec![],
    };
    store().verify(&signed, "echo", &pins).unwrap();
}

#[test]
fn signer_not_in_policy_signers_is_refused() {
    let both = TrustStore::from_keys(vec![
        trusted("dev", &key(1), &["echo"]),
        trusted("release", &key(3), &["echo"]),
    ]);
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    let pins = SignerPins {
        digest: None,
        signers: vec!["release".into()],
    };
    let err = both.verify(&signed, "echo", &pins).unwrap_err();
    assert_eq!(
        err,
        Refusal::SignerNotPinned {
            key: "dev".into(),
            allowed: vec!["release".into()]
        }
    );
    let signed = sign(&signed, &key(3)).unwrap();
    assert_eq!(
        both.verify(&signed, "echo", &pins).unwrap().signer,
        "release"
    );
}

#[test]
fn stripped_signature_section_is_refused_as_unsigned() {
    let signed = sign(&sample_component(42), &key(1)).unwrap();
    let stripped = strip(&signed).unwrap();
    assert_eq!(
        store().verify(&stripped, "echo", &no_pins()).unwrap_err(),
        Refusal::Unsigned
    );
}

#[test]
fn two_signatures_by_two_keys_both_verify() {
    let component = sample_component(42);
    let once = sign(&component, &key(1)).unwrap();
    let twice = sign(&once, &key(2)).unwrap();
    let sigs = signatures(&twice).unwrap();
    assert_eq!(sigs.len(), 2);
    let d = digest(&twice).unwrap();
    for sig in &sigs {
        sig.verify(&d).unwrap();
    }
    assert_eq!(
        store().verify(&twice, "echo", &no_pins()).unwrap().signer,
        "dev"
    );
    assert_eq!(
        store().verify(&twice, "refund", &no_pins()).unwrap().signer,
        "payments"
    );
}

#[test]
fn removing_one_signature_leaves_the_other_valid() {
    let component = sample_component(42);
    let first_only = sign(&component, &key(1)).unwrap();
    let twice = sign(&first_only, &key(2)).unwrap();
    // Drop the first signature section: the second alone must still verify.
    let second_section = &twice[first_only.len()..];
    let mut second_only = component.clone();
    second_only.extend_from_slice(second_section);
    let sigs = signatures(&second_only).unwrap();
    assert_eq!(sigs.len(), 1);
    sigs[0].verify(&digest(&second_only).unwrap()).unwrap();
    assert_eq!(
        store()
            .verify(&second_only, "refund", &no_pins())
            .unwrap()
            .signer,
        "payments"
    );
    assert!(matches!(
        store().verify(&second_only, "echo", &no_pins()),
        Err(Refusal::NotTrustedFor { .. })
    ));
}

#[test]
fn signing_twice_with_the_same_key_adds_nothing() {
    let once = sign(&sample_component(42), &key(1)).unwrap();
    assert_eq!(sign(&once, &key(1)).unwrap(), once);
}

#[test]
fn detached_signature_verifies_without_touching_the_component() {
    let component = sample_component(42);
    let detached = sign_detached(&component, &key(1)).unwrap();
    assert_eq!(detached.len(), PAYLOAD_LEN);
    let verified = store()
        .verify_with_detached(&component, &detached, "echo", &no_pins())
        .unwrap();
    assert_eq!(verified.signer, "dev");
    let other = sample_component(43);
    assert!(matches!(
        store().verify_with_detached(&other, &detached, "echo", &no_pins()),
        Err(Refusal::BadSignature { .. })
    ));
    assert!(matches!(
        store().verify_with_detached(&component, &detached[1..], "echo", &no_pins()),
        Err(Refusal::Malformed(SigningError::DetachedLength { .. }))
    ));
}

#[test]
fn garbage_and_core_modules_are_malformed() {
    let core = wasm_encoder::Module::new().finish();
    for (bytes, expected) in [
        (b"hello".to_vec(), SigningError::NotWasm),
        (core, SigningError::CoreModule),
    ] {
        assert_eq!(
            store().verify(&bytes, "echo", &no_pins()).unwrap_err(),
            Refusal::Malformed(expected)
        );
    }
    let mut truncated = sample_component(42);
    truncated.pop();
    assert!(matches!(
        store().verify(&truncated, "echo", &no_pins()),
        Err(Refusal::Malformed(SigningError::Malformed { .. }))
    ));
}

#[test]
fn trust_file_loads_and_rejects_bad_entries_with_file_and_line() {
    let dev = keys::public_key_text(&key(1).verifying_key());
    let good = format!(
        "[[key]]\nname = \"dev\"\npublic_key = \"{dev}\"\ncapabilities = [\"echo\", \"pii-*\"]\n"
    );
    let store = TrustStore::parse(&good, Path::new("trust.toml")).unwrap();
    assert_eq!(store.keys().len(), 1);
    assert!(store.keys()[0].trusted_for("pii-redact"));
    assert!(!store.keys()[0].trusted_for("pii-"));
    assert!(!store.keys()[0].trusted_for("refund"));

    let cases = [
        (good.replace("name =", "nmae ="), "unknown field"),
        (good.replace("\"pii-*\"", "\"*\""), "every capability"),
        (good.replace("\"pii-*\"", "\"p*i\""), "trailing"),
        (good.replace("ed25519:", "rsa:"), "not a public key"),
        (
            good.replace("[\"echo\", \"pii-*\"]", "[]"),
            "`capabilities` is empty",
        ),
        (format!("{good}{good}"), "duplicate key name"),
    ];
    for (text, needle) in cases {
        let err = TrustStore::parse(&text, Path::new("trust.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("trust.toml"), "{err}");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    let err = TrustStore::parse(&good.replace("name =", "nmae ="), Path::new("trust.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn describe_reports_each_signature() {
    let component = sample_component(42);
    let twice = sign(&sign(&component, &key(1)).unwrap(), &key(9)).unwrap();
    let d = digest(&twice).unwrap();
    let report = store().describe(&d, &signatures(&twice).unwrap());
    assert_eq!(report.len(), 2);
    assert!(report[0].verifies() && report[1].verifies());
    assert_eq!(report[0].trusted_as.as_deref(), Some("dev"));
    assert_eq!(report[1].trusted_as, None);
    let mut trailing_garbage = component.clone();
    trailing_garbage.push(0);
    assert!(
        digest(&trailing_garbage).is_err(),
        "trailing garbage is malformed"
    );
}

proptest::proptest! {
    /// Arbitrary bytes, and a real component with bytes flipped or cut,
    /// never panic the section reader, the digest or the signature reader.
    #[test]
    fn arbitrary_and_mutated_components_never_panic_the_signature_reader(
        noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..8),
        cut in 0usize..4096,
    ) {
        let _ = signatures(&noise);
        let _ = digest(&noise);
        let _ = detached_signatures(&noise);
        let mut bytes = sign(&sample_component(1), &key(1)).expect("sign");
        let len = bytes.len().max(1);
        for (at, b) in flips {
            if let Some(slot) = bytes.get_mut(at % len) {
                *slot = b;
            }
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = signatures(&bytes);
        let _ = digest(&bytes);
        let _ = strip(&bytes);
    }
}
