//! The `warden` command line: one file per subcommand.
//!
//! Each subcommand module exports `Args` (clap) and `run(args) -> anyhow::Result<ExitCode>`.
//! Commands are thin shells over the library; they never hold logic that an
//! embedder would also need.

pub mod approvals;
pub mod audit;
pub mod audit_artifact;
pub mod audit_bundle;
pub mod audit_prove;
pub mod audit_replay;
pub mod audit_replay_run;
pub mod audit_witness;
pub mod audit_witness_monitor;
pub mod client;
pub mod data_dir;
pub mod dev;
pub mod init;
pub mod inspect;
pub mod key;
pub mod kv;
pub mod mcp;
pub mod new;
pub mod policy;
pub mod routes;
pub mod run;
pub mod serve;
pub mod sign;
pub mod token;
pub mod verify;
pub mod workflow;
pub mod workflow_runs;
