//! Write warden capabilities in Rust.
//!
//! A warden *capability* is a WebAssembly component (target `wasm32-wasip2`)
//! whose exported functions are the operations it offers and whose imports are
//! the authority it asks for. This crate gives Rust authors:
//!
//! * typed bindings for the warden host interfaces declared in the
//!   repository's `wit/warden.wit` (package `warden:host@0.1.0`):
//!   [`log`], [`kv`], [`model`], [`invocation`] (the idempotency key to
//!   pass on to external services: [`idempotency_key`]) and the shared
//!   [`Error`] type ([`types`]);
//! * a re-export of [`wit_bindgen`] so a capability crate can generate
//!   bindings for its own exports without naming a second version of it;
//! * small conveniences: one-line logging helpers ([`log_info`],
//!   [`log_warn`], ...) and [`Error::kind`] / [`Error::reason`].
//!
//! Every host interface is *authority*: the component imports an interface
//! only if it actually calls one of its functions (the component linker drops
//! unused imports), and the capability's policy must grant each import by name
//! (`"warden:host/log" = {}` in the policy's `[imports]`), otherwise the host
//! refuses to load it.
//!
//! # Writing a capability
//!
//! Layout of a capability crate (see `capabilities/` in the repository for
//! working examples, and `warden new <name>` to scaffold one):
//!
//! ```text
//! my-cap/
//!   Cargo.toml        [lib] crate-type = ["cdylib"]; depends on warden-sdk
//!   wit/world.wit     the capability's own world
//!   src/lib.rs
//! ```
//!
//! `wit/world.wit` declares what the capability exports and which warden
//! interfaces it imports:
//!
//! ```wit
//! package warden-cap:greeter;
//!
//! world greeter {
//!     import warden:host/log@0.1.0;
//!
//!     record greeting { text: string, shout: bool }
//!     export greet: func(name: string) -> greeting;
//! }
//! ```
//!
//! `src/lib.rs` generates bindings from *two* WIT roots: the repository's
//! `wit/` (which holds `warden:host` and the vendored WASI packages) and the
//! crate's own `wit/`. With more than one root the world name must be fully
//! qualified. The `with` map makes the capability reuse this crate's bindings
//! for the warden interfaces (so [`Error`] is one type everywhere) — list every
//! `warden:host` interface your world imports, including `types` when you
//! import `kv` or `model` (they use it). `runtime_path` points the generated
//! code at the re-exported runtime, so the capability does not need its own
//! `wit-bindgen` dependency:
//!
//! ```ignore
//! // src/lib.rs of a capability inside the warden repository
//! // (capabilities/greeter/, so the warden WIT is at ../../wit)
//! warden_sdk::wit_bindgen::generate!({
//!     path: ["../../wit", "wit"],
//!     world: "warden-cap:greeter/greeter",
//!     with: {
//!         "warden:host/log@0.1.0": warden_sdk::log,
//!     },
//!     runtime_path: "warden_sdk::wit_bindgen::rt",
//! });
//!
//! use warden_sdk::log::{log, Level};
//!
//! struct Greeter;
//!
//! impl Guest for Greeter {
//!     fn greet(name: String) -> Greeting {
//!         log(Level::Info, "greeting someone");
//!         Greeting { shout: name.ends_with('!'), text: format!("hello, {name}") }
//!     }
//! }
//!
//! export!(Greeter);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the component
//! is `target/wasm32-wasip2/release/<crate_name>.wasm`. Give it a policy:
//!
//! ```toml
//! [capability]
//! name = "greeter"
//! component = "greeter.wasm"
//!
//! [imports]
//! "warden:host/log" = {}
//!
//! [budget]
//! fuel = 100_000_000
//! memory = "16MiB"
//! wall_time = "1s"
//! max_output = "64KiB"
//! ```
//!
//! ## Outside the repository
//!
//! A crate that lives outside the warden repository cannot point at
//! `../../wit`. Copy `wit/warden.wit` into the crate as
//! `wit/deps/warden-host/warden.wit` (this is what `warden new` does) and use
//! the single default root: `generate!({ world: "my-cap", ... })`. Such a
//! crate can depend on `wit-bindgen = "0.46"` directly and let it generate the
//! warden interfaces too (`generate_all`), or depend on `warden-sdk` and use
//! the `with` map as above.
//!
//! ## Using the host interfaces
//!
//! ```ignore
//! use warden_sdk::{kv, model, Error};
//!
//! fn remember(key: &str, value: &str) -> Result<(), Error> {
//!     kv::set(key, value.as_bytes())
//! }
//!
//! fn summarise(text: &str) -> Result<String, Error> {
//!     let resp = model::generate(&model::GenerateRequest {
//!         model: "small".into(),
//!         messages: vec![model::Message { role: "user".into(), content: text.into() }],
//!         max_tokens: Some(200),
//!         temperature: None,
//!     })?;
//!     Ok(resp.content)
//! }
//! ```
//!
//! Keep capabilities free of `println!`, files, sockets and clocks unless you
//! need them: on `wasm32-wasip2`, Rust `std` imports the WASI interface behind
//! each of those, and every import must be granted by the policy.
//!
//! The functions in this crate only do something inside a warden component.
//! They compile on native targets (so a workspace can `cargo test` it) but
//! calling them there aborts.

/// Generated bindings for world `warden:host/imports`.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "warden:host/imports",
    });
}

pub use wit_bindgen;

pub use bindings::warden::host::{invocation, kv, log, model, types};

/// The error every warden host call returns: `denied`, `budget-exhausted`,
/// `unavailable` or `invalid`, each with a human-readable reason.
pub use bindings::warden::host::types::Error;

/// This invocation's idempotency key (requires the `warden:host/invocation`
/// grant): the same for every attempt of the same workflow step
/// (`<run id>.<step id>`) or request. Send it on to every external service
/// that changes something (e.g. as an `Idempotency-Key` header): warden
/// runs a step at least once, and a service that honours the key makes its
/// effect happen exactly once.
pub fn idempotency_key() -> String {
    invocation::idempotency_key()
}

/// Log `message` at `info` level (requires the `warden:host/log` grant).
pub fn log_info(message: &str) {
    log::log(log::Level::Info, message);
}

/// Log `message` at `warn` level (requires the `warden:host/log` grant).
pub fn log_warn(message: &str) {
    log::log(log::Level::Warn, message);
}

/// Log `message` at `error` level (requires the `warden:host/log` grant).
pub fn log_error(message: &str) {
    log::log(log::Level::Error, message);
}

/// Log `message` at `debug` level (requires the `warden:host/log` grant).
pub fn log_debug(message: &str) {
    log::log(log::Level::Debug, message);
}

impl Error {
    /// The human-readable reason carried by every error case.
    pub fn reason(&self) -> &str {
        match self {
            Error::Denied(s)
            | Error::BudgetExhausted(s)
            | Error::Unavailable(s)
            | Error::Invalid(s) => s,
        }
    }

    /// The WIT case name: `denied`, `budget-exhausted`, `unavailable`,
    /// `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Denied(_) => "denied",
            Error::BudgetExhausted(_) => "budget-exhausted",
            Error::Unavailable(_) => "unavailable",
            Error::Invalid(_) => "invalid",
        }
    }
}
