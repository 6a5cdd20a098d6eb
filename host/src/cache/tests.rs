#![allow(clippy::unwrap_used)]

use super::*;
use crate::signing::tests::sample_component;
use std::os::unix::fs::PermissionsExt as _;

fn engine() -> Engine {
    Engine::new(&wasmtime::Config::new()).unwrap()
}

fn digest_of(bytes: &[u8]) -> String {
    signing::digest(bytes).unwrap().to_string()
}

#[test]
fn first_load_compiles_and_writes_a_cache_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(dir.path()).unwrap();
    let engine = engine();
    let bytes = sample_component(42);
    let digest = digest_of(&bytes);
    let (_, outcome) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
    assert_eq!(outcome, CacheOutcome::Miss);
    assert_eq!(cache.compiles(), 1);
    assert!(cache.path_for(&engine, &digest).unwrap().is_file());
    let key = dir.path().join("cache.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(fs::read(&key).unwrap().len(), 32);
}

#[test]
fn restart_with_a_warm_cache_loads_without_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = sample_component(42);
    let digest = digest_of(&bytes);
    {
        let cache = CompiledCache::open(dir.path()).unwrap();
        cache.load_or_compile(&engine(), &digest, &bytes).unwrap();
        assert_eq!(cache.compiles(), 1);
    }
    // A new cache instance and a new engine, as after a restart.
    let cache = CompiledCache::open(dir.path()).unwrap();
    let (_, outcome) = cache.load_or_compile(&engine(), &digest, &bytes).unwrap();
    assert_eq!(outcome, CacheOutcome::Hit);
    assert_eq!(cache.compiles(), 0);
    assert_eq!(cache.hits(), 1);
}

#[test]
fn corrupted_cache_file_is_detected_and_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(dir.path()).unwrap();
    let engine = engine();
    let bytes = sample_component(42);
    let digest = digest_of(&bytes);
    cache.load_or_compile(&engine, &digest, &bytes).unwrap();
    let path = cache.path_for(&engine, &digest).unwrap();
    let good = fs::read(&path).unwrap();
    // Flip one byte in the header, in the middle of the artifact, and in the MAC.
    for offset in [
        20,
        HEADER_LEN + (good.len() - HEADER_LEN) / 2,
        good.len() - 1,
    ] {
        let mut bad = good.clone();
        bad[offset] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        let compiles = cache.compiles();
        let (_, outcome) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
        assert_eq!(
            outcome,
            CacheOutcome::Discarded(DiscardReason::BadMac),
            "offset {offset}"
        );
        assert_eq!(cache.compiles(), compiles + 1);
        // The rewritten file is good again.
        let (_, outcome) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
        assert_eq!(outcome, CacheOutcome::Hit);
    }
    // A truncated file and a foreign file are discarded too.
    for bad in [good[..10].to_vec(), vec![0u8; good.len()]] {
        fs::write(&path, &bad).unwrap();
        let (_, outcome) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
        assert!(matches!(outcome, CacheOutcome::Discarded(_)), "{outcome:?}");
    }
}

#[test]
fn cache_file_copied_from_another_digest_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(dir.path()).unwrap();
    let engine = engine();
    let first = sample_component(1);
    let second = sample_component(2);
    let (first_digest, second_digest) = (digest_of(&first), digest_of(&second));
    cache
        .load_or_compile(&engine, &first_digest, &first)
        .unwrap();
    let first_path = cache.path_for(&engine, &first_digest).unwrap();
    let second_path = cache.path_for(&engine, &second_digest).unwrap();
    fs::copy(&first_path, &second_path).unwrap();
    let (_, outcome) = cache
        .load_or_compile(&engine, &second_digest, &second)
        .unwrap();
    assert_eq!(outcome, CacheOutcome::Discarded(DiscardReason::WrongDigest));
    assert_eq!(cache.compiles(), 2);
}

#[test]
fn cache_file_from_another_host_key_is_not_used() {
    let engine = engine();
    let bytes = sample_component(42);
    let digest = digest_of(&bytes);
    let theirs = tempfile::tempdir().unwrap();
    let other = CompiledCache::open(theirs.path()).unwrap();
    other.load_or_compile(&engine, &digest, &bytes).unwrap();
    let ours = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(ours.path()).unwrap();
    fs::copy(
        other.path_for(&engine, &digest).unwrap(),
        cache.path_for(&engine, &digest).unwrap(),
    )
    .unwrap();
    let (_, outcome) = cache.load_or_compile(&engine, &digest, &bytes).unwrap();
    assert_eq!(outcome, CacheOutcome::Discarded(DiscardReason::BadMac));
}

#[test]
fn digest_that_does_not_match_the_bytes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let cache = CompiledCache::open(dir.path()).unwrap();
    let err = cache
        .load_or_compile(
            &engine(),
            &digest_of(&sample_component(1)),
            &sample_component(2),
        )
        .unwrap_err();
    assert!(matches!(err, CacheError::DigestMismatch { .. }), "{err}");
}

#[test]
fn world_writable_cache_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let err = CompiledCache::open(dir.path()).unwrap_err();
    assert!(matches!(err, CacheError::InsecureDir { .. }), "{err}");
}

#[test]
fn readable_cache_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    CompiledCache::open(dir.path()).unwrap();
    let key = dir.path().join("cache.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = CompiledCache::open(dir.path()).unwrap_err();
    assert!(matches!(err, CacheError::BadKey { .. }), "{err}");
}
