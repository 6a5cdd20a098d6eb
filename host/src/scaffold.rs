//! `warden new <name>`: scaffold a capability crate and its policy.
//!
//! The generated crate is standalone (its own empty `[workspace]`), depends
//! on `wit-bindgen` directly and carries a copy of the `warden:host` WIT in
//! `wit/deps/warden-host/warden.wit`, so it builds anywhere with
//! `cargo build --release --target wasm32-wasip2`. Templates live in
//! `host/templates/capability/` and use `{{name}}` (kebab-case) and
//! `{{name_snake}}` placeholders.

use std::path::{Path, PathBuf};

/// Why a capability could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name is not lowercase kebab-case starting with a letter, or is
    /// reserved.
    #[error("invalid capability name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    /// The target directory exists and is not empty.
    #[error("refusing to overwrite non-empty directory {}", .0.display())]
    NotEmpty(PathBuf),
    /// Creating a directory or writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Template files: (path inside the new crate, template text).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/capability/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/capability/src/lib.rs.tmpl"),
    ),
    (
        "wit/world.wit",
        include_str!("../templates/capability/wit/world.wit.tmpl"),
    ),
    (
        "policy.toml",
        include_str!("../templates/capability/policy.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/capability/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/capability/gitignore.tmpl"),
    ),
];

/// The `warden:host` WIT package, copied verbatim into every new crate.
const WARDEN_WIT: &str = include_str!("../../wit/warden.wit");

/// Where the warden WIT goes inside the new crate.
const WARDEN_WIT_PATH: &str = "wit/deps/warden-host/warden.wit";

/// Names that are WIT keywords or that cargo/rustc refuse as crate names.
const RESERVED: &[&str] = &[
    // WIT keywords
    "use",
    "type",
    "func",
    "u8",
    "u16",
    "u32",
    "u64",
    "s8",
    "s16",
    "s32",
    "s64",
    "f32",
    "f64",
    "float32",
    "float64",
    "char",
    "bool",
    "string",
    "option",
    "result",
    "future",
    "stream",
    "list",
    "tuple",
    "record",
    "variant",
    "enum",
    "flags",
    "resource",
    "own",
    "borrow",
    "as",
    "from",
    "static",
    "interface",
    "world",
    "import",
    "export",
    "package",
    "constructor",
    "include",
    "with",
    "async",
    "error-context",
    // crate names cargo rejects or that shadow the standard library
    "test",
    "std",
    "core",
    "alloc",
    "proc-macro",
    "self",
    "super",
    "crate",
    "fn",
    "mod",
    "impl",
    "struct",
    "trait",
    "let",
    "match",
    "loop",
    "while",
    "for",
    "if",
    "else",
    "return",
    "true",
    "false",
    "in",
    "ref",
    "mut",
    "pub",
    "where",
    "move",
    "const",
    "extern",
    "unsafe",
    "dyn",
];

/// Longest accepted name.
const MAX_NAME_LEN: usize = 64;

/// Check that `name` is lowercase kebab-case (`[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*`,
/// every segment starting with a letter, as WIT identifiers require) and not
/// reserved.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |reason| {
        Err(ScaffoldError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    for segment in name.split('-') {
        if segment.is_empty() {
            return bad("empty segment (leading, trailing or doubled '-')");
        }
        if !segment.starts_with(|c: char| c.is_ascii_lowercase()) {
            return bad("every '-'-separated segment must start with a lowercase letter");
        }
        if !segment
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        {
            return bad("only lowercase ASCII letters, digits and '-' are allowed");
        }
    }
    if RESERVED.contains(&name) {
        return bad("reserved word");
    }
    Ok(())
}

/// `my-cap` -> `my_cap` (the crate's library name; the component file is
/// `<name_snake>.wasm`).
pub fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn render(template: &str, name: &str) -> String {
    template
        .replace("{{name_snake}}", &snake(name))
        .replace("{{name}}", name)
}

/// Create a capability crate called `name` in `dir` (created if missing; an
/// existing empty directory is fine). Returns the written files, in write
/// order.
pub fn scaffold(name: &str, dir: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    validate_name(name)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ScaffoldError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }

    let files = TEMPLATES
        .iter()
        .map(|(rel, text)| (*rel, render(text, name)))
        .chain(std::iter::once((WARDEN_WIT_PATH, WARDEN_WIT.to_string())));

    let mut written = Vec::new();
    for (rel, contents) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, contents).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        std::env::temp_dir().join(format!(
            "warden-scaffold-{tag}-{}-{nanos}",
            std::process::id()
        ))
    }

    #[test]
    fn names() {
        for ok in ["a", "echo", "my-cap", "fx-rate2", "a1-b2-c3"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "1cap", "-cap", "cap-", "my--cap", "My-Cap", "my_cap", "my cap", "cap-1", "über",
            "world", "test", "self", "my.cap",
        ] {
            assert!(
                matches!(validate_name(bad), Err(ScaffoldError::InvalidName { .. })),
                "{bad:?} should be rejected"
            );
        }
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn writes_all_files_with_placeholders_filled() {
        let dir = temp_dir("ok");
        let written = scaffold("my-cap", &dir).expect("scaffold");
        let rels: Vec<String> = written
            .iter()
            .map(|p| {
                p.strip_prefix(&dir)
                    .expect("under dir")
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        assert_eq!(
            rels,
            [
                "Cargo.toml",
                "src/lib.rs",
                "wit/world.wit",
                "policy.toml",
                "README.md",
                ".gitignore",
                "wit/deps/warden-host/warden.wit"
            ]
        );
        for p in &written {
            let text = std::fs::read_to_string(p).expect("read");
            assert!(
                !text.contains("{{"),
                "unfilled placeholder in {}",
                p.display()
            );
        }
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("read");
        assert!(cargo.contains("name = \"my-cap\""));
        let policy = std::fs::read_to_string(dir.join("policy.toml")).expect("read");
        assert!(policy.contains("name = \"my-cap\""));
        assert!(policy.contains("component = \"my_cap.wasm\""));
        assert!(policy.contains("\"warden:host/log\" = {}"));
        let world = std::fs::read_to_string(dir.join("wit/world.wit")).expect("read");
        assert!(world.contains("package warden-cap:my-cap;"));
        assert!(world.contains("world my-cap {"));
        let wit = std::fs::read_to_string(dir.join(WARDEN_WIT_PATH)).expect("read");
        assert!(wit.contains("package warden:host@0.1.0;"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn empty_existing_dir_is_fine_non_empty_is_refused() {
        let dir = temp_dir("exists");
        std::fs::create_dir_all(&dir).expect("mkdir");
        scaffold("cap", &dir).expect("empty dir is fine");
        let err = scaffold("cap", &dir).expect_err("non-empty must be refused");
        assert!(
            matches!(err, ScaffoldError::NotEmpty(ref p) if p == &dir),
            "{err}"
        );
        // nothing was overwritten
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("read");
        assert!(lib.contains("cap: run"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn invalid_name_writes_nothing() {
        let dir = temp_dir("invalid");
        assert!(scaffold("Bad_Name", &dir).is_err());
        assert!(!dir.exists());
    }
}
