//! End-to-end tests: real components built for wasm32-wasip2 by the root
//! build script, run through the `warden-host` library.

mod approvals;
mod audit;
mod bounds;
mod capabilities;
mod cli;
mod daemon;
mod demo;
mod determinism;
mod doubles;
mod first_hour;
mod function_identity;
mod hostile;
mod http_limits;
mod idempotency;
mod interfaces_fs;
mod interfaces_http;
mod interfaces_kv;
mod interfaces_model;
mod loading;
mod mcp;
mod polyglot;
mod replay;
mod replay_recorded;
mod signing;
mod support;
mod tenants;
mod transparency;
mod transparency_witness;
mod types;
mod workflows;
mod workflows_daemon;
mod workflows_metrics;
mod workflows_pinned;
mod workflows_replay;
mod workflows_scale;
