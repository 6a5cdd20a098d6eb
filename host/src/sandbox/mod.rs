//! The sandbox: one wasmtime Engine (pooling allocator, fuel, epochs), the
//! epoch ticker, per-capability linkers built from grants, and per-invocation
//! Stores with budgets.
//!
//! Enforcement lives here; it takes validated policies and never decides what
//! is allowed (that is `policy`). Nothing is linked that a policy does not
//! grant: there is no "link everything, restrict the context".

mod invoke;
mod linker;
mod state;

pub use invoke::{CallOutcome, invoke};
pub use linker::{LinkError, linker_for, linker_for_replay};
pub use state::{InvocationIdentity, InvocationState};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Engine-wide settings. Per-capability budgets come from policies.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// How many invocations may be live at once (pooling slots).
    /// By default 100. Each slot reserves virtual address space, not memory.
    pub max_concurrent_instances: u32,
    /// Hard ceiling for any one linear memory, whatever a policy says.
    /// By default 1GiB.
    pub max_memory_per_memory: u64,
    /// Epoch tick period: the granularity of wall-time deadlines.
    /// By default 5ms.
    pub epoch_tick: Duration,
    /// Whether fuel metering is compiled in. By default true; benchmarks
    /// turn it off to measure its cost. With it off, `fuel` budgets are not
    /// enforced (wall time still is).
    pub fuel_metering: bool,
    /// Whether linear memories start as copy-on-write mappings of the
    /// component's initial memory image (wasmtime's default) rather than
    /// being filled by copying its data segments at each instantiation.
    /// By default true. Copy-on-write costs a page fault, and on a
    /// multi-threaded host a TLB shootdown across cores, per page the guest
    /// writes; copying costs the whole image per instantiation. Small
    /// components (a Rust capability's image is a few KiB) run 1.4-2x as
    /// fast with `false`; components with a large initialized heap (the
    /// componentize-py and componentize-js runtimes) run slower with it
    /// (BENCHMARKS.md, section 8).
    pub memory_init_cow: bool,
    /// Whether floating-point NaN results are canonicalised and relaxed-SIMD
    /// instructions give their deterministic results, so that the same
    /// component and input compute the same output on every CPU (what
    /// `warden audit replay` on another machine needs). By default true;
    /// the benchmark turns it off to measure its cost (BENCHMARKS.md).
    pub deterministic: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            max_concurrent_instances: 100,
            max_memory_per_memory: 1 << 30,
            epoch_tick: Duration::from_millis(5),
            fuel_metering: true,
            memory_init_cow: true,
            deterministic: true,
        }
    }
}

/// The engine and its epoch ticker.
pub struct Sandbox {
    engine: Engine,
    config: SandboxConfig,
    stop_ticker: Arc<AtomicBool>,
}

impl Sandbox {
    /// Builds the engine. Fails only if wasmtime rejects the configuration.
    pub fn new(config: SandboxConfig) -> wasmtime::Result<Sandbox> {
        let engine = Engine::new(&engine_config(&config))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), config.epoch_tick, stop_ticker.clone());
        Ok(Sandbox {
            engine,
            config,
            stop_ticker,
        })
    }

    /// The engine (for compiling components).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The settings it was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// The one engine configuration warden uses everywhere (benchmarks reuse it).
pub fn engine_config(config: &SandboxConfig) -> Config {
    let n = config.max_concurrent_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(4))
        .total_stacks(n)
        .max_core_instances_per_component(64)
        .max_memories_per_component(8)
        .max_tables_per_component(32)
        .table_elements(100_000)
        .decommit_batch_size(16)
        .max_memory_size(usize::try_from(config.max_memory_per_memory).unwrap_or(usize::MAX));
    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(config.fuel_metering)
        .epoch_interruption(true)
        .memory_init_cow(config.memory_init_cow)
        // Determinism for `warden audit replay` across machines: NaN bit
        // patterns and relaxed-SIMD results would otherwise depend on the
        // CPU (docs/audit.md "Replay"; cost measured in BENCHMARKS.md).
        .cranelift_nan_canonicalization(config.deterministic)
        .relaxed_simd_deterministic(config.deterministic)
        .max_wasm_stack(1 << 20)
        .async_stack_size(2 << 20)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

fn spawn_epoch_ticker(engine: Engine, tick: Duration, stop: Arc<AtomicBool>) {
    // A plain thread: ticking must not depend on the async runtime being
    // responsive, since a runaway guest may be hogging a runtime worker.
    let _ = std::thread::Builder::new()
        .name("warden-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        });
}
