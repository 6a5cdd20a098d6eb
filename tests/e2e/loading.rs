//! Deny-by-default loading: every import must be granted by name.

use crate::support::*;
use warden_host::LoadError;

fn load_err(policy_imports: &str, name: &str) -> String {
    let mut h = host();
    let bytes = std::fs::read(guest(name)).expect("built");
    match h.load(policy(name, policy_imports, ""), &bytes, name) {
        Ok(_) => panic!("{name} must be refused"),
        Err(e) => {
            assert!(matches!(e, LoadError::Link { .. }), "{e:?}");
            e.to_string()
        }
    }
}

#[test]
fn a_component_importing_an_ungranted_interface_is_refused_naming_it_and_the_policy() {
    let err = load_err(
        &format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}"),
        "kv-user",
    );
    assert!(err.contains("warden:host/kv@0.1.0"), "{err}");
    assert!(err.contains("policies/kv-user.toml"), "{err}");
}

#[test]
fn every_ungranted_import_is_named_not_only_the_first() {
    let err = load_err("", "panicker");
    for name in [
        "wasi:cli/stdout",
        "wasi:cli/stderr",
        "wasi:io/streams",
        "wasi:cli/exit",
    ] {
        assert!(err.contains(name), "{name} missing from: {err}");
    }
}

#[test]
fn a_component_importing_wasi_sockets_is_refused() {
    let imports = format!("{STD_IMPORTS}\n\"wasi:clocks/monotonic-clock\" = {{}}");
    let err = load_err(&imports, "socket-user");
    assert!(err.contains("wasi:sockets/"), "{err}");
}

#[test]
fn wasi_sockets_cannot_even_be_written_into_a_policy() {
    let text = "[capability]\nname = \"s\"\ncomponent = \"s.wasm\"\n[imports]\n\"wasi:sockets/tcp\" = {}\n";
    let err = warden_host::policy::Policy::parse(std::path::Path::new("p.toml"), text)
        .expect_err("refused");
    assert!(err.to_string().contains("p.toml:5"), "{err}");
}

#[test]
fn a_grant_for_another_version_track_does_not_cover_the_import() {
    let imports = STD_IMPORTS.replace("\"wasi:cli/stdout\" = {}", "\"wasi:cli/stdout@0.3\" = {}");
    let err = load_err(&imports, "panicker");
    assert!(err.contains("wasi:cli/stdout@0.2"), "{err}");
}

#[test]
fn exports_are_discovered_with_signatures_and_schemas() {
    let mut h = host();
    load(&mut h, policy("all-types", STD_IMPORTS, ""), "all-types");
    let cap = h.capability("all-types").expect("loaded");
    let mix = cap.shape.export("mix").expect("mix");
    assert_eq!(
        mix.signature(),
        "func(a: u32, b: string, c: list<record { x: s32, y: s32, label: option<string> }>) -> string"
    );
    let schema = mix.input_schema();
    assert_eq!(schema["required"], serde_json::json!(["a", "b", "c"]));
    assert_eq!(
        schema["properties"]["a"]["maximum"],
        serde_json::json!(u32::MAX)
    );
    let add = cap
        .shape
        .export("calc#add")
        .expect("interface function by short name");
    assert!(add.id.ends_with("/calc#add"), "{}", add.id);
}
