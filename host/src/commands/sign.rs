//! `warden sign`: add a signature to a component.

use anyhow::Context as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_host::{keys, signing};

/// Sign a component with a private key.
///
/// The signature covers the SHA-256 of the component with all signature
/// sections removed, so several keys can sign the same component and each
/// signature stays valid. See docs/signing.md for the format.
#[derive(clap::Args)]
pub struct Args {
    /// Private key file written by `warden key generate` (mode 0600).
    #[arg(long)]
    key: PathBuf,
    /// The component (.wasm) to sign.
    component: PathBuf,
    /// Output file. Embedded: defaults to rewriting <component> in place
    /// (atomically). Detached: defaults to <component>.sig.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Write the signature to a separate file instead of into the component.
    /// An existing signature file gets the new signature appended.
    #[arg(long)]
    detached: bool,
}

/// Runs `warden sign`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = keys::read_private_key(&args.key)?;
    let bytes = fs::read(&args.component)
        .with_context(|| format!("cannot read component {}", args.component.display()))?;
    let context = || format!("cannot sign {}", args.component.display());
    let key_id = keys::key_id(&key.verifying_key());
    if args.detached {
        let record = signing::sign_detached(&bytes, &key).with_context(context)?;
        let out = args.output.unwrap_or_else(|| {
            let mut name = args.component.clone().into_os_string();
            name.push(".sig");
            PathBuf::from(name)
        });
        let mut file = match fs::read(&out) {
            Ok(existing) => {
                signing::detached_signatures(&existing)
                    .with_context(|| format!("{} is not a signature file", out.display()))?;
                existing
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err).context(format!("cannot read {}", out.display())),
        };
        if !file
            .chunks_exact(signing::PAYLOAD_LEN)
            .any(|existing| existing == record.as_slice())
        {
            file.extend_from_slice(&record);
        }
        write_atomically(&out, &file)?;
        println!(
            "signed {} with key {key_id}: detached signature in {}",
            args.component.display(),
            out.display()
        );
    } else {
        let signed = signing::sign(&bytes, &key).with_context(context)?;
        let out = args.output.unwrap_or_else(|| args.component.clone());
        write_atomically(&out, &signed)?;
        println!(
            "signed {} with key {key_id} -> {}",
            args.component.display(),
            out.display()
        );
    }
    println!("digest: {}", signing::digest(&bytes).with_context(context)?);
    Ok(ExitCode::SUCCESS)
}

fn write_atomically(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(".{}.tmp", std::process::id()));
    let temp = path.with_file_name(temp_name);
    fs::write(&temp, data).with_context(|| format!("cannot write {}", temp.display()))?;
    fs::rename(&temp, path).with_context(|| {
        let _ = fs::remove_file(&temp);
        format!("cannot write {}", path.display())
    })
}
