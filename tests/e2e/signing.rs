//! Signed capabilities end to end: real components, real signatures, a
//! trust store, the precompiled cache.

use crate::support::*;
use serde_json::json;
use std::path::Path;
use warden_host::cache::CacheOutcome;
use warden_host::keys::{self, SigningKey};
use warden_host::policy::Policy;
use warden_host::signing::{self, Refusal, TrustStore};
use warden_host::{Call, Host, HostConfig, LoadError, Outcome};

fn trust(entries: &[(&str, &SigningKey, &str)]) -> TrustStore {
    let mut text = String::new();
    for (name, key, caps) in entries {
        text.push_str(&format!(
            "[[key]]\nname = \"{name}\"\npublic_key = \"{}\"\ncapabilities = [{caps}]\n\n",
            keys::public_key_text(&key.verifying_key())
        ));
    }
    TrustStore::parse(&text, Path::new("trust.toml")).expect("valid trust file")
}

fn trusted_host(trust: TrustStore) -> Host {
    Host::new(HostConfig {
        sandbox: small_pool(),
        trust: Some(trust),
        ..HostConfig::default()
    })
    .expect("host")
}

fn pii_policy(extra: &str) -> Policy {
    let text = std::fs::read_to_string(repo().join("policies/pii-redact.toml")).expect("policy");
    // Drop the example's own signer pin; each test states the pins it needs.
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("signers"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replacen("[capability]\n", &format!("[capability]\n{extra}\n"), 1);
    Policy::parse(Path::new("policies/pii-redact.toml"), &text).expect("valid")
}

fn pii_bytes() -> Vec<u8> {
    std::fs::read(guest("pii-redact")).expect("built")
}

fn refusal(host: &mut Host, policy: Policy, bytes: &[u8]) -> Refusal {
    match host.load(policy, bytes, "pii_redact.wasm") {
        Err(LoadError::Signature { refusal, .. }) => refusal,
        Err(other) => panic!("expected a signature refusal, got: {other}"),
        Ok(_) => panic!("expected a signature refusal, but it loaded"),
    }
}

#[tokio::test]
async fn a_signed_and_trusted_component_loads_and_runs() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-*\"")]));
    let signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    let cap = h
        .load(pii_policy("signers = [\"dev\"]"), &signed, "pii")
        .expect("loads");
    assert_eq!(cap.signer.as_deref(), Some("dev"));
    assert_eq!(
        cap.digest,
        signing::digest(&pii_bytes()).expect("digest"),
        "digest excludes signatures"
    );
    let r = h
        .invoke(Call::new("pii-redact", "redact", json!({"text": "a@b.co"})))
        .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(!r.unsigned_allowed);
}

#[test]
fn an_unsigned_component_is_refused() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    assert!(matches!(
        refusal(&mut h, pii_policy(""), &pii_bytes()),
        Refusal::Unsigned
    ));
}

#[test]
fn without_a_trust_store_nothing_loads_unless_unsigned_is_allowed() {
    let mut h = Host::new(HostConfig {
        sandbox: small_pool(),
        ..HostConfig::default()
    })
    .expect("host");
    let signed = signing::sign(&pii_bytes(), &keys::generate()).expect("sign");
    let err = h
        .load(pii_policy(""), &signed, "pii")
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::NoTrust(_)), "{err}");
    assert!(err.to_string().contains("--allow-unsigned"), "{err}");
}

#[test]
fn a_component_signed_by_an_unknown_key_is_refused() {
    let dev = keys::generate();
    let stranger = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    let signed = signing::sign(&pii_bytes(), &stranger).expect("sign");
    let r = refusal(&mut h, pii_policy(""), &signed);
    assert!(matches!(r, Refusal::UnknownKey { .. }), "{r}");
}

#[test]
fn a_key_trusted_only_for_another_capability_is_refused() {
    let refunds = keys::generate();
    let mut h = trusted_host(trust(&[("refunds-team", &refunds, "\"refund\"")]));
    let signed = signing::sign(&pii_bytes(), &refunds).expect("sign");
    let r = refusal(&mut h, pii_policy(""), &signed);
    assert!(matches!(r, Refusal::NotTrustedFor { .. }), "{r}");
    assert!(r.to_string().contains("pii-redact"), "{r}");
}

#[test]
fn one_flipped_byte_in_the_code_after_signing_is_refused() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    let mut signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    // Flip a byte in the middle of the original component (its code), not in the signature section.
    let i = pii_bytes().len() / 2;
    signed[i] ^= 0x01;
    let r = refusal(&mut h, pii_policy(""), &signed);
    assert!(
        matches!(r, Refusal::BadSignature { .. } | Refusal::Malformed(_)),
        "{r}"
    );
}

#[test]
fn a_digest_pin_mismatch_is_refused() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    let signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    let pin = format!("digest = \"sha256:{}\"", "0".repeat(64));
    let r = refusal(&mut h, pii_policy(&pin), &signed);
    assert!(matches!(r, Refusal::DigestMismatch { .. }), "{r}");
    // And the right pin loads.
    let good = format!("digest = \"{}\"", signing::digest(&signed).expect("digest"));
    h.load(pii_policy(&good), &signed, "pii")
        .expect("right pin loads");
}

#[test]
fn a_signer_not_named_in_the_policy_is_refused() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    let signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    let r = refusal(&mut h, pii_policy("signers = [\"security-team\"]"), &signed);
    assert!(matches!(r, Refusal::SignerNotPinned { .. }), "{r}");
}

#[test]
fn a_stripped_signature_section_leaves_the_component_unsigned_and_refused() {
    let dev = keys::generate();
    let mut h = trusted_host(trust(&[("dev", &dev, "\"pii-redact\"")]));
    let signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    let stripped = signing::strip(&signed).expect("strip");
    assert!(matches!(
        refusal(&mut h, pii_policy(""), &stripped),
        Refusal::Unsigned
    ));
}

#[test]
fn two_signatures_both_verify_and_removing_one_leaves_the_other_valid() {
    let (a, b) = (keys::generate(), keys::generate());
    let twice = signing::sign(&signing::sign(&pii_bytes(), &a).expect("a"), &b).expect("b");
    assert_eq!(signing::signatures(&twice).expect("sigs").len(), 2);
    // Trusting only b: the second signature suffices.
    let mut h = trusted_host(trust(&[("b", &b, "\"pii-redact\"")]));
    h.load(pii_policy(""), &twice, "pii")
        .expect("b's signature verifies");
    // Remove every signature, then re-add only a's: a alone still verifies.
    let only_a = signing::sign(&signing::strip(&twice).expect("strip"), &a).expect("a");
    let mut h = trusted_host(trust(&[("a", &a, "\"pii-redact\"")]));
    h.load(pii_policy(""), &only_a, "pii")
        .expect("a's signature verifies");
}

#[test]
fn a_restart_with_a_warm_cache_loads_without_compiling() {
    let data = scratch("warm-cache");
    let dev = keys::generate();
    let signed = signing::sign(&pii_bytes(), &dev).expect("sign");
    let config = || HostConfig {
        sandbox: small_pool(),
        trust: Some(trust(&[("dev", &dev, "\"pii-redact\"")])),
        data_dir: Some(data.clone()),
        ..HostConfig::default()
    };
    {
        let mut cold = Host::new(config()).expect("host");
        let cap = cold.load(pii_policy(""), &signed, "pii").expect("loads");
        assert_eq!(cap.compiled, CacheOutcome::Miss);
        assert_eq!(cold.cache().map(|c| c.compiles()), Some(1));
    }
    let mut warm = Host::new(config()).expect("host");
    let cap = warm.load(pii_policy(""), &signed, "pii").expect("loads");
    assert_eq!(cap.compiled, CacheOutcome::Hit);
    assert_eq!(warm.cache().map(|c| (c.compiles(), c.hits())), Some((0, 1)));
}

#[test]
fn a_corrupted_cache_file_is_discarded_and_recompiled() {
    let data = scratch("bad-cache");
    let config = || HostConfig {
        sandbox: small_pool(),
        allow_unsigned: true,
        data_dir: Some(data.clone()),
        ..HostConfig::default()
    };
    let digest = signing::digest(&pii_bytes()).expect("digest").to_string();
    let path = {
        let mut h = Host::new(config()).expect("host");
        h.load(pii_policy(""), &pii_bytes(), "pii").expect("loads");
        h.cache()
            .and_then(|c| c.path_for(h.sandbox().engine(), &digest))
            .expect("cache path")
    };
    let mut bytes = std::fs::read(&path).expect("cache file");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).expect("corrupt");
    let mut h = Host::new(config()).expect("host");
    let cap = h.load(pii_policy(""), &pii_bytes(), "pii").expect("loads");
    assert!(
        matches!(cap.compiled, CacheOutcome::Discarded(_)),
        "{:?}",
        cap.compiled
    );
    assert_eq!(h.cache().map(|c| c.compiles()), Some(1));
}

#[test]
fn allow_unsigned_waives_only_the_missing_signature_not_a_tampered_one() {
    let mut h = host(); // allow_unsigned, no trust store
    let mut signed = signing::sign(&pii_bytes(), &keys::generate()).expect("sign");
    let i = pii_bytes().len() / 2;
    signed[i] ^= 0x01;
    let r = refusal(&mut h, pii_policy(""), &signed);
    assert!(
        matches!(r, Refusal::BadSignature { .. } | Refusal::Malformed(_)),
        "{r}"
    );
    // An unsigned component loads, with the digest pin still enforced.
    let pin = format!("digest = \"sha256:{}\"", "1".repeat(64));
    let r = refusal(&mut h, pii_policy(&pin), &pii_bytes());
    assert!(matches!(r, Refusal::DigestMismatch { .. }), "{r}");
    h.load(pii_policy(""), &pii_bytes(), "pii")
        .expect("unsigned loads with the dev switch");
}
