//! Build script of the root package `warden-e2e`: builds every guest
//! component so the end-to-end tests, the demo and the examples need no
//! manual steps.
//!
//! It runs, for `capabilities/` and `tests/guests/` (two separate cargo
//! workspaces):
//!
//! ```text
//! cargo build --release --target wasm32-wasip2
//! ```
//!
//! with `CARGO_TARGET_DIR=<repo>/target/guests` (its own lock, so the nested
//! cargo never waits on the outer one) and exports
//! `WARDEN_GUESTS_DIR=<repo>/target/guests/wasm32-wasip2/release` to the
//! package's code (`env!("WARDEN_GUESTS_DIR")`). Components are named
//! `<crate_name_with_underscores>.wasm` there.
//!
//! Set `WARDEN_SKIP_GUEST_BUILD=1` to skip the nested builds (the env var is
//! still exported; use it when the guests are built some other way).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest workspaces, relative to the repository root.
const GUEST_WORKSPACES: &[&str] = &["capabilities", "tests/guests"];

const WASM_TARGET: &str = "wasm32-wasip2";

/// Variables the outer cargo sets for build scripts (or users set for the
/// host build) that would break or distort the nested wasm build.
const CLEARED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_LINKER",
    "RUSTC_BOOTSTRAP",
    "CARGO_INCREMENTAL",
];

/// Prefixes of variables cleared as well (`CARGO_CFG_*`, `CARGO_FEATURE_*`,
/// `CARGO_PKG_*`, `DEP_*`, per-profile overrides for the outer build).
const CLEARED_PREFIXES: &[&str] = &[
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "DEP_",
    "CARGO_PROFILE_",
];

fn main() {
    let root = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo"),
    );
    let target_dir = root.join("target").join("guests");
    let out_dir = target_dir.join(WASM_TARGET).join("release");

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WARDEN_SKIP_GUEST_BUILD");
    println!("cargo:rustc-env=WARDEN_GUESTS_DIR={}", out_dir.display());
    watch(&root.join("wit"));
    watch(&root.join("sdk").join("Cargo.toml"));
    watch(&root.join("sdk").join("src"));
    for ws in GUEST_WORKSPACES {
        let dir = root.join(ws);
        watch(&dir.join("Cargo.toml"));
        watch(&dir.join("Cargo.lock"));
        for member in members(&dir) {
            watch(&member.join("Cargo.toml"));
            watch(&member.join("src"));
            watch(&member.join("wit"));
        }
    }

    if std::env::var_os("WARDEN_SKIP_GUEST_BUILD").is_some_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:warning=WARDEN_SKIP_GUEST_BUILD set: not building guest components");
        return;
    }

    ensure_wasm_target(&root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for ws in GUEST_WORKSPACES {
        let dir = root.join(ws);
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&dir)
            .args(["build", "--release", "--target", WASM_TARGET]);
        for var in CLEARED_VARS {
            cmd.env_remove(var);
        }
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str()
                && CLEARED_PREFIXES.iter().any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        // Set after the clearing above (which removes the outer CARGO_TARGET_DIR).
        cmd.env("CARGO_TARGET_DIR", &target_dir);
        // the target dir must exist for CARGO_TARGET_DIR's lock file
        let _ = std::fs::create_dir_all(&target_dir);
        let output = match cmd.output() {
            Ok(o) => o,
            Err(e) => panic!(
                "warden-e2e build.rs: could not run {:?} for {}: {e}",
                cargo,
                dir.display()
            ),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            eprintln!("{stdout}");
            panic!(
                "\n\nwarden-e2e build.rs: building the guest components in `{}` failed ({}).\n\
                 Command: cargo build --release --target {WASM_TARGET} (CARGO_TARGET_DIR={})\n\
                 Is the {WASM_TARGET} target installed? (`rustup target add {WASM_TARGET}`; \
                 rust-toolchain.toml lists it.)\n\
                 --- nested cargo stderr ---\n{stderr}\n",
                dir.display(),
                output.status,
                target_dir.display(),
            );
        }
        for member in members(&dir) {
            if let Some(name) = crate_name(&member) {
                let wasm = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
                if !wasm.exists() {
                    panic!(
                        "warden-e2e build.rs: expected {} after building {}",
                        wasm.display(),
                        dir.display()
                    );
                }
            }
        }
    }
}

/// rust-toolchain.toml lists the wasm target, and recent rustup installs it
/// on first use; older rustup only does so when it installs the toolchain.
/// When rustup is present and the target is missing, add it (a fresh clone
/// must build with nothing installed by hand).
fn ensure_wasm_target(root: &Path) {
    let installed = Command::new("rustup")
        .current_dir(root)
        .args(["target", "list", "--installed"])
        .env_remove("RUSTC")
        .output();
    let Ok(out) = installed else {
        return; // no rustup: the build below reports a missing target clearly
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == WASM_TARGET)
    {
        return;
    }
    println!(
        "cargo:warning=installing the {WASM_TARGET} target with rustup (listed in rust-toolchain.toml)"
    );
    let _ = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add", WASM_TARGET])
        .env_remove("RUSTC")
        .status();
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}

/// Member crate directories of a guest workspace: its immediate
/// subdirectories that hold a Cargo.toml (never `target`).
fn members(ws: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(ws) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && entry.file_name() != "target" && path.join("Cargo.toml").is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The `name = "..."` of a member's `[package]` (simple line scan; the guest
/// manifests are ours and put it on one line).
fn crate_name(member: &Path) -> Option<String> {
    let text = std::fs::read_to_string(member.join("Cargo.toml")).ok()?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
            continue;
        }
        if in_package
            && let Some(rest) = line.strip_prefix("name")
            && let Some(v) = rest.trim_start().strip_prefix('=')
        {
            return Some(v.trim().trim_matches('"').to_string());
        }
    }
    None
}
