//! Guest using `wasi:filesystem` directly: read, write and list paths given
//! as input (preopen, mode, traversal and symlink tests). A path is matched
//! against the preopens' guest paths (longest prefix); the rest is passed
//! unchanged to `open-at`, so `..` and symlinks reach the host's checks.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:fs-user/fs-user",
    generate_all,
});

use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{Descriptor, DescriptorFlags, OpenFlags, PathFlags};
use wasi::io::streams::StreamError;

struct G;

/// The preopen whose guest path prefixes `path`, and the rest of `path`.
fn resolve(path: &str) -> Result<(Descriptor, String), String> {
    let mut best: Option<(Descriptor, String)> = None;
    let mut best_len = 0;
    for (dir, guest) in get_directories() {
        let prefix = guest.trim_end_matches('/');
        let rest = match path.strip_prefix(prefix) {
            Some(r) if r.is_empty() || r.starts_with('/') => r,
            _ => continue,
        };
        if prefix.len() >= best_len {
            best_len = prefix.len();
            best = Some((dir, rest.trim_start_matches('/').to_string()));
        }
    }
    let (dir, rest) = best.ok_or_else(|| format!("no preopen covers `{path}`"))?;
    Ok((dir, if rest.is_empty() { ".".into() } else { rest }))
}

fn open(path: &str, open: OpenFlags, flags: DescriptorFlags) -> Result<Descriptor, String> {
    let (dir, rest) = resolve(path)?;
    dir.open_at(PathFlags::SYMLINK_FOLLOW, &rest, open, flags)
        .map_err(|e| format!("{e:?}"))
}

impl Guest for G {
    fn read(path: String) -> Result<String, String> {
        let file = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        read_all(&file)
    }

    fn write(path: String, contents: String) -> Result<(), String> {
        let file = open(
            &path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )?;
        let mut at = 0;
        let bytes = contents.as_bytes();
        while at < bytes.len() {
            let n = file
                .write(&bytes[at..], at as u64)
                .map_err(|e| format!("{e:?}"))?;
            at += n as usize;
        }
        Ok(())
    }

    fn list_dir(path: String) -> Result<Vec<String>, String> {
        let dir = open(&path, OpenFlags::DIRECTORY, DescriptorFlags::READ)?;
        let entries = dir.read_directory().map_err(|e| format!("{e:?}"))?;
        let mut names = Vec::new();
        while let Some(entry) = entries.read_directory_entry().map_err(|e| format!("{e:?}"))? {
            names.push(entry.name);
        }
        names.sort();
        Ok(names)
    }

    fn read_stream(path: String) -> Result<String, String> {
        let file = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        let stream = file.read_via_stream(0).map_err(|e| format!("{e:?}"))?;
        let mut data = Vec::new();
        loop {
            match stream.blocking_read(4096) {
                Ok(chunk) => data.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(e) => return Err(format!("{e:?}")),
            }
        }
        String::from_utf8(data).map_err(|e| e.to_string())
    }

    fn write_stream(path: String, contents: String) -> Result<(), String> {
        let file = open(
            &path,
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )?;
        let stream = file.write_via_stream(0).map_err(|e| format!("{e:?}"))?;
        for chunk in contents.as_bytes().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(())
    }

    fn write_existing(path: String, contents: String) -> Result<u64, String> {
        let file = open(&path, OpenFlags::empty(), DescriptorFlags::READ)?;
        file.write(contents.as_bytes(), 0)
            .map_err(|e| format!("{e:?}"))
    }

    fn read_in(dir: String, name: String) -> Result<String, String> {
        let dir = open(&dir, OpenFlags::DIRECTORY, DescriptorFlags::READ)?;
        let file = dir
            .open_at(
                PathFlags::SYMLINK_FOLLOW,
                &name,
                OpenFlags::empty(),
                DescriptorFlags::READ,
            )
            .map_err(|e| format!("{e:?}"))?;
        read_all(&file)
    }

    fn stat_many(path: String, count: u32, distinct: bool) -> Result<u32, String> {
        let (dir, rest) = resolve(&path)?;
        let mut ok = 0;
        for i in 0..count {
            let p = if distinct {
                format!("{rest}{i}")
            } else {
                rest.clone()
            };
            if dir.stat_at(PathFlags::empty(), &p).is_ok() {
                ok += 1;
            }
        }
        Ok(ok)
    }
}

/// Reads a whole file with `read` in 64 KiB chunks.
fn read_all(file: &Descriptor) -> Result<String, String> {
    let mut data = Vec::new();
    loop {
        let (chunk, end) = file
            .read(65536, data.len() as u64)
            .map_err(|e| format!("{e:?}"))?;
        data.extend(chunk);
        if end {
            break;
        }
    }
    String::from_utf8(data).map_err(|e| e.to_string())
}

export!(G);
