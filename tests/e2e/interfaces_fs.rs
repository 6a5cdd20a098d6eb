//! `wasi:filesystem` preopens: granted directories with modes; traversal,
//! absolute paths and symlinks cannot leave a preopen.

use crate::support::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use warden_host::audit::HostCall;
use warden_host::digest::Hash256;
use warden_host::policy::Policy;
use warden_host::{Host, InvocationRecord, LoadError, Outcome};

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
    let mut h = host_with_echo();
    load(
        &mut h,
        policy("fs-user", &fs_imports(&in_out(root)), ""),
        "fs-user",
    );
    h
}

/// `/in` (read-only) and `/out` (read-write) over `root`.
fn in_out(root: &Path) -> String {
    format!(
        "{{ host = \"{in_}\", guest = \"/in\", mode = \"read-only\" }}, {{ host = \"{out}\", guest = \"/out\", mode = \"read-write\" }}",
        in_ = root.join("in").display(),
        out = root.join("out").display()
    )
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

/// Like [`fs_host`], with a data directory so invocations are audited.
fn fs_audited_host(root: &Path, name: &str) -> Host {
    let mut h = audited_host(name);
    load(
        &mut h,
        policy("fs-user", &fs_imports(&in_out(root)), ""),
        "fs-user",
    );
    h
}

/// The `wasi:filesystem` summaries in `r`'s committed audit entry.
fn fs_calls(h: &Host, r: &InvocationRecord) -> Vec<HostCall> {
    let calls = audit_entry_of(h, r).entry.host_calls;
    assert_eq!(calls, r.host_calls, "the record and the audit entry agree");
    calls
        .into_iter()
        .filter(|c| c.interface == "wasi:filesystem")
        .collect()
}

/// `<preopen> sha256:<SHA-256 of the relative path>`.
fn at(preopen: &str, rel: &str) -> String {
    format!("{preopen} {}", Hash256::of(rel.as_bytes()))
}

fn fs_call(
    target: String,
    status: &str,
    (bytes_in, bytes_out): (u64, u64),
    request: Option<&[u8]>,
    response: Option<&[u8]>,
) -> HostCall {
    HostCall {
        interface: "wasi:filesystem".into(),
        target,
        bytes_in,
        bytes_out,
        status: status.into(),
        request_sha256: request.map(Hash256::of),
        response_sha256: response.map(Hash256::of),
    }
}

#[tokio::test]
async fn reading_a_preopened_file_is_summarised_with_path_hash_bytes_and_content_hash() {
    let root = layout("fs-audit-read");
    let h = fs_audited_host(&root, "fs-audit-read-data");
    let hello = b"hello from the host";

    // `read` in 64 KiB chunks: the data chunk and the empty end-of-file read
    // fold into one summary whose hash is the file's SHA-256.
    let r = call(&h, "fs-user", "read", json!({"path": "/in/hello.txt"})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert!(r.replayable, "filesystem results are recorded: {r:?}");
    assert_eq!(r.not_replayable, None, "{r:?}");
    assert_eq!(
        fs_calls(&h, &r),
        vec![
            fs_call(
                format!("open-at {} flags=read", at("/in", "hello.txt")),
                "ok",
                (0, 0),
                None,
                None
            ),
            fs_call(
                format!("read {}", at("/in", "hello.txt")),
                "ok calls=2",
                (0, 19),
                None,
                Some(hello)
            ),
        ]
    );

    // Through a stream: bytes the guest read from the stream are counted
    // into the summary of the call that opened it.
    let r = call(
        &h,
        "fs-user",
        "read-stream",
        json!({"path": "/in/hello.txt"}),
    )
    .await;
    assert_eq!(
        r.output,
        Some(json!({"ok": "hello from the host"})),
        "{r:?}"
    );
    assert_eq!(
        fs_calls(&h, &r)[1],
        fs_call(
            format!("read-via-stream {} @0", at("/in", "hello.txt")),
            "ok",
            (0, 19),
            None,
            Some(hello)
        )
    );

    // A file opened relative to a subdirectory: the path is joined with
    // `/`, so its target is the same as when opened from the preopen.
    let r = call(
        &h,
        "fs-user",
        "read-in",
        json!({"dir": "/in/sub", "name": "deep.txt"}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"ok": "deep"})), "{r:?}");
    assert_eq!(
        fs_calls(&h, &r),
        vec![
            fs_call(
                format!("open-at {} flags=directory,read", at("/in", "sub")),
                "ok",
                (0, 0),
                None,
                None
            ),
            fs_call(
                format!("open-at {} flags=read", at("/in", "sub/deep.txt")),
                "ok",
                (0, 0),
                None,
                None
            ),
            fs_call(
                format!("read {}", at("/in", "sub/deep.txt")),
                "ok calls=2",
                (0, 4),
                None,
                Some(b"deep")
            ),
        ]
    );

    // Listing: the names read from the stream, joined by `\n`, in the order
    // the directory returned them.
    let r = call(&h, "fs-user", "list-dir", json!({"path": "/in"})).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let names: Vec<String> = std::fs::read_dir(root.join("in"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let listing = names.join("\n");
    assert_eq!(
        fs_calls(&h, &r)[1],
        fs_call(
            format!("read-directory {}", at("/in", ".")),
            "ok",
            (0, listing.len() as u64),
            None,
            Some(listing.as_bytes())
        )
    );
    let text = format!("{:?}", audit_entry_of(&h, &r));
    assert!(!text.contains("hello.txt"), "paths are hashed: {text}");
}

#[tokio::test]
async fn writing_in_a_read_write_preopen_is_summarised_with_the_bytes_written() {
    let root = layout("fs-audit-write");
    let h = fs_audited_host(&root, "fs-audit-write-data");
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
    assert_eq!(
        fs_calls(&h, &r),
        vec![
            fs_call(
                format!(
                    "open-at {} flags=create,truncate,write",
                    at("/out", "result.txt")
                ),
                "ok",
                (0, 0),
                None,
                None
            ),
            fs_call(
                format!("write {}", at("/out", "result.txt")),
                "ok",
                (4, 0),
                Some(b"done"),
                None
            ),
        ]
    );

    // 10,000 bytes through a stream in 4 KiB `blocking-write-and-flush`
    // calls: one summary, all bytes, one hash.
    let contents = "0123456789".repeat(1000);
    let r = call(
        &h,
        "fs-user",
        "write-stream",
        json!({"path": "/out/big.txt", "contents": contents}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("out/big.txt")).expect("written"),
        contents
    );
    assert_eq!(
        fs_calls(&h, &r)[1],
        fs_call(
            format!("write-via-stream {} @0", at("/out", "big.txt")),
            "ok",
            (10_000, 0),
            Some(contents.as_bytes()),
            None
        )
    );
}

#[tokio::test]
async fn refused_filesystem_calls_are_summarised_with_their_error_code() {
    let root = layout("fs-audit-refused");
    let h = fs_audited_host(&root, "fs-audit-refused-data");

    // Traversal out of the preopen, directly and through a symlink: the
    // relative path is recorded as asked (`..` included), before any
    // normalisation.
    for (path, rel) in [
        ("/in/../secret.txt", "../secret.txt"),
        ("/in/sub/../../secret.txt", "sub/../../secret.txt"),
        ("/in/escape", "escape"),
    ] {
        let r = call(&h, "fs-user", "read", json!({"path": path})).await;
        assert_eq!(r.outcome, Outcome::CapabilityError, "{path}: {r:?}");
        assert_eq!(
            fs_calls(&h, &r),
            vec![fs_call(
                format!("open-at {} flags=read", at("/in", rel)),
                "not-permitted",
                (0, 0),
                None,
                None
            )],
            "{path}"
        );
    }

    // Creating a file in a read-only preopen.
    let r = call(
        &h,
        "fs-user",
        "write",
        json!({"path": "/in/new.txt", "contents": "x"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert_eq!(
        fs_calls(&h, &r),
        vec![fs_call(
            format!(
                "open-at {} flags=create,truncate,write",
                at("/in", "new.txt")
            ),
            "not-permitted",
            (0, 0),
            None,
            None
        )]
    );

    // Writing through a descriptor of a read-only preopen: the refused
    // bytes are recorded (count and hash) as what the guest tried to write.
    let r = call(
        &h,
        "fs-user",
        "write-existing",
        json!({"path": "/in/hello.txt", "contents": "overwritten"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::CapabilityError, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("in/hello.txt")).expect("read"),
        "hello from the host"
    );
    assert_eq!(
        fs_calls(&h, &r),
        vec![
            fs_call(
                format!("open-at {} flags=read", at("/in", "hello.txt")),
                "ok",
                (0, 0),
                None,
                None
            ),
            fs_call(
                format!("write {}", at("/in", "hello.txt")),
                "not-permitted",
                (11, 0),
                Some(b"overwritten"),
                None
            ),
        ]
    );

    // A missing file is an error code too.
    let r = call(&h, "fs-user", "read", json!({"path": "/out/missing.txt"})).await;
    assert_eq!(
        fs_calls(&h, &r),
        vec![fs_call(
            format!("open-at {} flags=read", at("/out", "missing.txt")),
            "no-entry",
            (0, 0),
            None,
            None
        )]
    );
}

#[tokio::test]
async fn a_flood_of_filesystem_calls_keeps_the_audit_entry_bounded() {
    use warden_host::interfaces::fs::{FURTHER_CALLS, MAX_FS_SUMMARIES};
    let root = layout("fs-audit-flood");
    let h = fs_audited_host(&root, "fs-audit-flood-data");

    // The same call in a loop is one summary with its count.
    let r = call(
        &h,
        "fs-user",
        "stat-many",
        json!({"path": "/in/hello.txt", "count": 5000, "distinct": false}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"ok": 5000})), "{r:?}");
    assert_eq!(
        fs_calls(&h, &r),
        vec![fs_call(
            format!("stat-at {}", at("/in", "hello.txt")),
            "ok calls=5000",
            (0, 0),
            None,
            None
        )]
    );

    // Distinct paths: the first MAX_FS_SUMMARIES are itemised, the rest are
    // folded into one summary per status.
    let r = call(
        &h,
        "fs-user",
        "stat-many",
        json!({"path": "/in/nope-", "count": 2000, "distinct": true}),
    )
    .await;
    assert_eq!(r.output, Some(json!({"ok": 0})), "{r:?}");
    let calls = fs_calls(&h, &r);
    assert_eq!(calls.len(), MAX_FS_SUMMARIES + 1, "{calls:?}");
    for (n, c) in calls.iter().take(MAX_FS_SUMMARIES).enumerate() {
        assert_eq!(
            *c,
            fs_call(
                format!("stat-at {}", at("/in", &format!("nope-{n}"))),
                "no-entry",
                (0, 0),
                None,
                None
            )
        );
    }
    assert_eq!(
        calls[MAX_FS_SUMMARIES],
        fs_call(
            FURTHER_CALLS.into(),
            &format!("no-entry calls={}", 2000 - MAX_FS_SUMMARIES),
            (0, 0),
            None,
            None
        )
    );
}
