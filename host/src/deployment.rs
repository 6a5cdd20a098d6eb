//! `warden init` and `warden token create`: a new deployment directory and
//! new bearer tokens.
//!
//! A deployment is the set of files `warden serve --config` reads:
//! `warden.toml` (principals with token hashes), `routes.toml`, `trust.toml`,
//! `policies/`, `components/`, plus the signing key and the tokens themselves
//! (`keys/`, `tokens/`, mode 0600) and a README saying what is where. The
//! layout is written so the daemon starts on it at once, serving nothing
//! until a capability is added.
//!
//! This module never overwrites a file and never prints a secret: tokens go
//! to files the caller names; what it returns is paths and hashes.

use crate::digest::Hash256;
use crate::keys::{self, KeyError};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Prefix of every token this module makes: tells a reader (and a secret
/// scanner) what the string is.
pub const TOKEN_PREFIX: &str = "wdn_";

/// Why a deployment or token could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The directory exists and holds files: nothing was written.
    #[error(
        "refusing to initialise {}: the directory exists and is not empty (choose a new directory)",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// A capability name given for the trust file is not a valid name.
    #[error("invalid capability name {name:?} for trust.toml: {reason}")]
    Capability { name: String, reason: String },
    /// The operating system's random source failed.
    #[error("cannot draw random bytes for a token: {0}")]
    Rng(String),
    /// The signing key could not be made or written.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Creating a directory or writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A fresh bearer token: [`TOKEN_PREFIX`] and 32 random bytes in hex.
pub fn new_token() -> Result<String, DeploymentError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| DeploymentError::Rng(err.to_string()))?;
    let mut token = String::from(TOKEN_PREFIX);
    crate::digest::push_hex(&bytes, &mut token);
    Ok(token)
}

/// The `token_sha256` value warden.toml holds for `token`: lowercase hex
/// SHA-256 of its bytes (what `printf %s "$TOKEN" | sha256sum` prints).
pub fn token_sha256(token: &str) -> String {
    Hash256::of(token.as_bytes()).hex()
}

/// A `[[principal]]` block for warden.toml.
pub fn principal_block(name: &str, token: &str, roles: &[&str]) -> String {
    let roles = roles
        .iter()
        .map(|r| format!("{r:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "[[principal]]\nname         = {name:?}\ntoken_sha256 = \"{}\"\nroles        = [{roles}]\n",
        token_sha256(token)
    )
}

/// Writes `token` and a newline to a new file with mode 0600.
pub fn write_token_file(path: &Path, token: &str) -> Result<(), DeploymentError> {
    write_new(path, format!("{token}\n").as_bytes(), 0o600)
}

/// The principals `warden init` creates: (name, roles), one per role.
pub const PRINCIPALS: &[(&str, &[&str])] = &[
    ("admin", &["admin"]),
    ("submitter", &["submit"]),
    ("approver", &["approve"]),
    ("auditor", &["audit"]),
];

/// What [`init`] wrote.
#[derive(Debug)]
pub struct Deployment {
    /// The deployment directory.
    pub dir: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// The config file to pass to `warden serve --config`.
    pub config: PathBuf,
    /// (principal name, token file) for each principal.
    pub tokens: Vec<(String, PathBuf)>,
    /// The signing key's private file.
    pub signing_key: PathBuf,
}

/// Options of [`init`].
#[derive(Debug, Default)]
pub struct InitOptions {
    /// The `listen` address written into warden.toml.
    pub listen: Option<String>,
    /// Capability names (or `prefix-*` patterns) the new key is trusted to
    /// sign. Empty: the key's trust entry is written commented out.
    pub capabilities: Vec<String>,
}

/// Writes a ready deployment into `dir` (created if missing; refused if it
/// holds anything).
pub fn init(dir: &Path, options: &InitOptions) -> Result<Deployment, DeploymentError> {
    for name in &options.capabilities {
        check_trust_pattern(name)?;
    }
    if let Ok(mut entries) = fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(DeploymentError::NotEmpty(dir.to_owned()));
    }
    let mut files = Vec::new();
    for sub in ["policies", "components", "keys", "tokens"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(io_error(&path))?;
    }
    let tokens_dir = dir.join("tokens");
    fs::set_permissions(&tokens_dir, fs::Permissions::from_mode(0o700))
        .map_err(io_error(&tokens_dir))?;

    let key = keys::try_generate()?;
    let (private, public) = keys::write_key_pair(&dir.join("keys"), "deploy", &key)?;
    files.push(private.clone());
    files.push(public);

    let mut principals = String::new();
    let mut tokens = Vec::new();
    for (name, roles) in PRINCIPALS {
        let token = new_token()?;
        let path = tokens_dir.join(format!("{name}.token"));
        write_token_file(&path, &token)?;
        principals.push('\n');
        principals.push_str(&principal_block(name, &token, roles));
        files.push(path.clone());
        tokens.push(((*name).to_owned(), path));
    }

    let listen = options.listen.as_deref().unwrap_or("127.0.0.1:7878");
    let config = dir.join("warden.toml");
    write_new(&config, config_text(listen, &principals).as_bytes(), 0o644)?;
    files.push(config.clone());

    let public_text = keys::public_key_text(&key.verifying_key());
    let trust = dir.join("trust.toml");
    write_new(
        &trust,
        trust_text(&public_text, &options.capabilities).as_bytes(),
        0o644,
    )?;
    files.push(trust);

    let routes = dir.join("routes.toml");
    write_new(&routes, ROUTES_TEXT.as_bytes(), 0o644)?;
    files.push(routes);

    let readme = dir.join("README.md");
    write_new(&readme, README_TEXT.as_bytes(), 0o644)?;
    files.push(readme);

    Ok(Deployment {
        dir: dir.to_owned(),
        files,
        config,
        tokens,
        signing_key: private,
    })
}

fn check_trust_pattern(name: &str) -> Result<(), DeploymentError> {
    let bare = name.strip_suffix('*').unwrap_or(name);
    let reason = if name == "*" {
        Some("a bare `*` would trust the key for every capability; name them".to_owned())
    } else if bare.is_empty() || bare.contains('*') {
        Some("one trailing `*` after a prefix is the only pattern".to_owned())
    } else if !bare
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("use lowercase letters, digits, `-` and `_`".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(DeploymentError::Capability {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn config_text(listen: &str, principals: &str) -> String {
    format!(
        r#"# warden daemon configuration (docs/config.md). Written by `warden init`.
# Paths are relative to this file's directory.

listen         = {listen:?}
data_dir       = "data"          # audit log, state, KV store, host key (created on first start)
components_dir = "components"
policies_dir   = "policies"
routes         = "routes.toml"
trust          = "trust.toml"

# One principal per role; each token is in tokens/<name>.token (mode 0600).
# Only the SHA-256 of a token is kept here. New token: `warden token create`.
{principals}"#
    )
}

fn trust_text(public_key: &str, capabilities: &[String]) -> String {
    let head = "# Keys trusted to sign capabilities (docs/signing.md). Written by `warden init`.\n\
                # The private half of `deploy` is keys/deploy.key: sign with\n\
                #   warden sign --key keys/deploy.key components/<file>.wasm\n\n";
    if capabilities.is_empty() {
        format!(
            "{head}# List the capabilities this key may sign, then uncomment (a bare \"*\" is refused):\n\
             # [[key]]\n# name         = \"deploy\"\n# public_key   = \"{public_key}\"\n\
             # capabilities = [\"my-capability\"]\n"
        )
    } else {
        let list = capabilities
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{head}[[key]]\nname         = \"deploy\"\npublic_key   = \"{public_key}\"\ncapabilities = [{list}]\n"
        )
    }
}

const ROUTES_TEXT: &str = r#"# Route table (docs/routes.md). Written by `warden init`.
# Rules are tried in order; the first match wins; no match is `no_route`.
#
# [[route]]
# id         = "echo"
# match      = { kind = "echo" }
# capability = "echo"
# function   = "echo"
"#;

const README_TEXT: &str = r#"# A warden deployment

Written by `warden init`. Start it with

    warden serve --config warden.toml

| path | what it is |
|---|---|
| `warden.toml` | the daemon's configuration (docs/config.md): listen address, directories, principals |
| `routes.toml` | which request kind goes to which capability function (docs/routes.md) |
| `trust.toml` | which keys may sign which capabilities (docs/signing.md) |
| `policies/` | one policy per capability, `*.toml` (docs/policy.md) |
| `components/` | the signed components the policies name |
| `keys/deploy.key` | the signing key (mode 0600; keep it off the serving host in production) |
| `tokens/*.token` | bearer tokens of the principals `admin`, `submitter`, `approver`, `auditor` (mode 0600) |
| `data/` | created on first start: audit log, working state, KV store, host key |

Add a capability:

    cp my_cap.wasm components/ && cp my-cap.toml policies/
    warden sign --key keys/deploy.key components/my_cap.wasm
    # trust.toml: list "my-cap" under the deploy key; routes.toml: add a route
    warden serve --config warden.toml --check     # validate everything first
    kill -HUP <pid>                               # or start the daemon

Submit and approve from this directory:

    warden submit --token-file tokens/submitter.token --kind <kind> --input '{...}'
    warden approvals list --token-file tokens/approver.token
"#;

fn write_new(path: &Path, content: &[u8], mode: u32) -> Result<(), DeploymentError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(content).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DeploymentError + '_ {
    move |source| DeploymentError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_token_is_prefixed_random_hex_and_its_hash_is_sha256_of_its_text() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 64);
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn init_refuses_a_directory_that_holds_anything_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = init(dir.path(), &InitOptions::default()).unwrap_err();
        assert!(matches!(err, DeploymentError::NotEmpty(_)), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn init_writes_tokens_and_keys_readable_only_by_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let dep = init(&dir.path().join("d"), &InitOptions::default()).unwrap();
        assert_eq!(dep.tokens.len(), PRINCIPALS.len());
        for (_, path) in &dep.tokens {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
            let token = fs::read_to_string(path).unwrap();
            let config = fs::read_to_string(&dep.config).unwrap();
            assert!(config.contains(&token_sha256(token.trim())));
            assert!(
                !config.contains(token.trim()),
                "the token itself is in warden.toml"
            );
        }
        let mode = fs::metadata(&dep.signing_key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_bare_star_is_refused_as_a_trusted_capability() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            capabilities: vec!["*".into()],
            ..InitOptions::default()
        };
        let err = init(&dir.path().join("d"), &options).unwrap_err();
        assert!(err.to_string().contains("bare `*`"), "{err}");
        assert!(!dir.path().join("d").exists());
    }
}
