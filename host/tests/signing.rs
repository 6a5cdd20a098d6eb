//! The signing command-line flows, run against the built `warden` binary:
//! `warden key generate` -> `warden sign` -> `warden verify --trust`.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn warden(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn component(value: i32) -> Vec<u8> {
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

/// Generates keys `names` in `dir/keys` and returns their public key texts.
fn generate(dir: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| {
            let out = warden(dir, &["key", "generate", "--name", name, "--out", "keys"]);
            assert!(out.status.success(), "{out:?}");
            fs::read_to_string(dir.join(format!("keys/{name}.pub")))
                .unwrap()
                .trim()
                .to_owned()
        })
        .collect()
}

fn write_trust(dir: &Path, entries: &[(&str, &str, &str)]) {
    let mut text = String::new();
    for (name, public_key, capabilities) in entries {
        text.push_str(&format!(
            "[[key]]\nname = \"{name}\"\npublic_key = \"{public_key}\"\ncapabilities = {capabilities}\n\n"
        ));
    }
    fs::write(dir.join("trust.toml"), text).unwrap();
}

#[test]
fn key_generate_writes_a_private_key_with_mode_0600_and_a_pasteable_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["dev"]);
    let mode = fs::metadata(dir.path().join("keys/dev.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(keys[0].starts_with("ed25519:") && keys[0].len() == 72);
    let again = warden(
        dir.path(),
        &["key", "generate", "--name", "dev", "--out", "keys"],
    );
    assert_eq!(again.status.code(), Some(2), "overwrite must be refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn signed_component_verifies_against_a_trust_file() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["dev"]);
    write_trust(dir.path(), &[("dev", &keys[0], r#"["echo", "pii-*"]"#)]);
    fs::write(dir.path().join("echo.wasm"), component(42)).unwrap();

    let unsigned = warden(
        dir.path(),
        &["verify", "echo.wasm", "--trust", "trust.toml"],
    );
    assert_eq!(unsigned.status.code(), Some(2));
    assert!(stdout(&unsigned).contains("unsigned"));

    let sign = warden(
        dir.path(),
        &[
            "sign",
            "--key",
            "keys/dev.key",
            "echo.wasm",
            "-o",
            "signed.wasm",
        ],
    );
    assert!(sign.status.success(), "{sign:?}");
    let verify = warden(
        dir.path(),
        &[
            "verify",
            "signed.wasm",
            "--trust",
            "trust.toml",
            "--capability",
            "echo",
        ],
    );
    let text = stdout(&verify);
    assert!(verify.status.success(), "{text}");
    assert!(text.contains("digest:    sha256:"), "{text}");
    assert!(text.contains(": verifies"), "{text}");
    assert!(text.contains("may sign: echo, pii-*"), "{text}");
    assert!(text.contains("allowed"), "{text}");
}

#[test]
fn verify_refuses_a_capability_the_key_is_not_trusted_for() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["dev"]);
    write_trust(dir.path(), &[("dev", &keys[0], r#"["pii-redact"]"#)]);
    fs::write(dir.path().join("c.wasm"), component(42)).unwrap();
    assert!(
        warden(dir.path(), &["sign", "--key", "keys/dev.key", "c.wasm"])
            .status
            .success()
    );
    let verify = warden(
        dir.path(),
        &[
            "verify",
            "c.wasm",
            "--trust",
            "trust.toml",
            "--capability",
            "refund",
        ],
    );
    assert_eq!(verify.status.code(), Some(2));
    assert!(stdout(&verify).contains("not trusted to sign capability \"refund\""));
}

#[test]
fn second_signature_keeps_the_first_valid() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["alice", "bob"]);
    write_trust(
        dir.path(),
        &[
            ("alice", &keys[0], r#"["echo"]"#),
            ("bob", &keys[1], r#"["echo"]"#),
        ],
    );
    fs::write(dir.path().join("c.wasm"), component(42)).unwrap();
    for name in ["alice", "bob"] {
        let key = format!("keys/{name}.key");
        assert!(
            warden(dir.path(), &["sign", "--key", &key, "c.wasm"])
                .status
                .success()
        );
    }
    let verify = warden(
        dir.path(),
        &["verify", "c.wasm", "--trust", "trust.toml", "--json"],
    );
    assert!(verify.status.success());
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let signatures = report["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2);
    for (signature, name) in signatures.iter().zip(["alice", "bob"]) {
        assert_eq!(signature["verifies"], true);
        assert_eq!(signature["trusted_as"], name);
    }
}

#[test]
fn flipped_byte_after_signing_fails_verify() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["dev"]);
    let bytes = component(42);
    fs::write(dir.path().join("c.wasm"), &bytes).unwrap();
    assert!(
        warden(dir.path(), &["sign", "--key", "keys/dev.key", "c.wasm"])
            .status
            .success()
    );
    let mut signed = fs::read(dir.path().join("c.wasm")).unwrap();
    let code = signed.windows(2).position(|w| w == [0x41, 42]).unwrap() + 1;
    signed[code] ^= 1;
    fs::write(dir.path().join("c.wasm"), &signed).unwrap();
    let verify = warden(dir.path(), &["verify", "c.wasm"]);
    assert_eq!(verify.status.code(), Some(2));
    assert!(stdout(&verify).contains("DOES NOT VERIFY: component changed after signing"));
}

#[test]
fn detached_signature_verifies_and_leaves_the_component_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let keys = generate(dir.path(), &["dev"]);
    write_trust(dir.path(), &[("dev", &keys[0], r#"["echo"]"#)]);
    let bytes = component(42);
    fs::write(dir.path().join("c.wasm"), &bytes).unwrap();
    let sign = warden(
        dir.path(),
        &["sign", "--key", "keys/dev.key", "--detached", "c.wasm"],
    );
    assert!(sign.status.success(), "{sign:?}");
    assert_eq!(fs::read(dir.path().join("c.wasm")).unwrap(), bytes);
    let verify = warden(
        dir.path(),
        &[
            "verify",
            "c.wasm",
            "--signature",
            "c.wasm.sig",
            "--trust",
            "trust.toml",
            "--capability",
            "echo",
        ],
    );
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn group_readable_private_key_is_refused_by_sign() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &["dev"]);
    let key = dir.path().join("keys/dev.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(dir.path().join("c.wasm"), component(42)).unwrap();
    let sign = warden(dir.path(), &["sign", "--key", "keys/dev.key", "c.wasm"]);
    assert_eq!(sign.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&sign.stderr).contains("chmod 600"));
}
