//! `wasi:filesystem` preopens: granted directories with modes; traversal,
//! absolute paths and symlinks cannot leave a preopen.

use crate::support::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use warden_host::policy::Policy;
use warden_host::{Host, LoadError, Outcome};

/// Host layout: `<root>/secret.txt` (outside every preopen),
/// `<root>/in/hello.txt`, `<root>/in/escape -> ../secret.txt`,
/// `<root>/in/up -> ..`, `<root>/out/`.
fn layout(name: &str) -> PathBuf {
    let root = scratch(name);
    std::fs::create_dir_all(root.join("in/sub")).expect("in");
    std::fs::create_dir_all(root.join("out")).expect("out");
    std::fs::write(root.join("secret.txt"), "TOP-SECRET").expect("secret");
    std::fs::write(root.join("in/hello.txt"), "hello from the host").expect("hello");
    std::fs::write(root.join("in/sub/deep.txt"), "deep").expect("deep");
    std::os::unix::fs::symlink("../secret.txt", root.join("in/escape")).expect("symlink");
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("in/escape-abs"))
        .expect("symlink");
    std::os::unix::fs::symlink("..", root.join("in/up")).expect("symlink");
    root
}

fn fs_imports(dirs: &str) -> String {
    format!(
        "{STD_IMPORTS}\n\"wasi:clocks/wall-clock\" = {{}}\n\"wasi:filesystem/types\" = {{}}\n\"wasi:filesystem/preopens\" = {{ dirs = [{dirs}] }}"
    )
}

fn fs_host(root: &Path) -> Host {
    let dirs = format!(
        "{{ host = \"{in_}\", guest = \"/in\", mode = \"read-only\" }}, {{ host = \"{out}\", guest = \"/out\", mode = \"read-write\" }}",
        in_ = root.join("in").display(),
        out = root.join("out").display()
    );
    let mut h = host_with_echo();
    load(&mut h, policy("fs-user", &fs_imports(&dirs), ""), "fs-user");
    h
}

#[tokio::test]
async fn a_preopened_directory_can_be_read_and_listed() {
    let root = layout("fs-read");
    let h = fs_host(&root);
    let r = call(&h, "fs-user", "read", json!({"path": "/in/hello.txt"})).await;
    assert_eq!(
        r.output,
        Some(json!({"ok": "hello from the host"})),
        "{r:?}"
    );
    let r = call(&h, "fs-user", "read", json!({"path": "/in/sub/deep.txt"})).await;
    assert_eq!(r.output, Some(json!({"ok": "deep"})), "{r:?}");
    let r = call(&h, "fs-user", "list-dir", json!({"path": "/in"})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let names = r.output.as_ref().and_then(|o| o.get("ok")).cloned();
    assert!(
        names
            .as_ref()
            .and_then(|n| n.as_array())
            .is_some_and(|n| n.contains(&json!("hello.txt"))),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_read_only_preopen_refuses_writes() {
    let root = layout("fs-ro");
    let h = fs_host(&root);
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/in/new.txt", "contents": "x"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(!root.join("in/new.txt").exists());
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/in/hello.txt", "contents": "x"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("in/hello.txt")).expect("read"),
        "hello from the host"
    );
}

#[tokio::test]
async fn a_read_write_preopen_accepts_writes() {
    let root = layout("fs-rw");
    let h = fs_host(&root);
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/out/result.txt", "contents": "done"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("out/result.txt")).expect("written"),
        "done"
    );
}

#[tokio::test]
async fn traversal_and_absolute_paths_cannot_leave_a_preopen() {
    let root = layout("fs-traversal");
    let h = fs_host(&root);
    let outside = root.join("secret.txt").display().to_string();
    for path in [
        "/in/../secret.txt",
        "/in/sub/../../secret.txt",
        "../secret.txt",
        "/secret.txt",
        outside.as_str(),
        "/etc/passwd",
        "/in/up/secret.txt",
    ] {
        let r = call(&h, "fs-user", "read", json!({"path": path})).await;
        assert_eq!(r.outcome, Outcome::CapabilityError, "{path}: {r:?}");
        assert!(!err_text(&r).contains("TOP-SECRET"), "{path}: {r:?}");
    }
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/out/../escaped.txt", "contents": "x"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert!(
        !root.join("escaped.txt").exists(),
        "write escaped the preopen"
    );
}

#[tokio::test]
async fn symlinks_pointing_outside_a_preopen_are_not_followed_out() {
    let root = layout("fs-symlink");
    let h = fs_host(&root);
    for path in ["/in/escape", "/in/escape-abs", "/in/up/secret.txt"] {
        let r = call(&h, "fs-user", "read", json!({"path": path})).await;
        assert_eq!(r.outcome, Outcome::CapabilityError, "{path}: {r:?}");
        let text = serde_json::to_string(&r.output).unwrap_or_default();
        assert!(!text.contains("TOP-SECRET"), "{path}: {r:?}");
    }
}

#[test]
fn filesystem_without_a_grant_is_refused_at_load() {
    let mut h = host();
    let bytes = std::fs::read(guest("fs-user")).expect("built");
    let err = h
        .load(policy("fs-user", STD_IMPORTS, ""), &bytes, "fs-user")
        .err()
        .expect("refused");
    assert!(matches!(err, LoadError::Link { .. }), "{err:?}");
    assert!(err.to_string().contains("wasi:filesystem/"), "{err}");
}

#[test]
fn a_missing_preopen_directory_is_refused_at_load() {
    let mut h = host();
    let bytes = std::fs::read(guest("fs-user")).expect("built");
    let dirs = "{ host = \"/definitely/not/here\", guest = \"/in\", mode = \"read-only\" }";
    let err = h
        .load(policy("fs-user", &fs_imports(dirs), ""), &bytes, "fs-user")
        .err()
        .expect("refused");
    assert!(err.to_string().contains("/definitely/not/here"), "{err}");
}

#[tokio::test]
async fn relative_host_paths_are_relative_to_the_policy_file() {
    let root = layout("fs-relative");
    let text = format!(
        "[capability]\nname = \"fs-user\"\ncomponent = \"fs_user.wasm\"\n\n[imports]\n{}\n",
        fs_imports("{ host = \"in\", guest = \"/data\", mode = \"read-only\" }")
    );
    let policy = Policy::parse(&root.join("fs-user.toml"), &text).expect("policy");
    let mut h = host();
    load(&mut h, policy, "fs-user");
    let r = call(&h, "fs-user", "read", json!({"path": "/data/hello.txt"})).await;
    assert_eq!(
        r.output,
        Some(json!({"ok": "hello from the host"})),
        "{r:?}"
    );
}
