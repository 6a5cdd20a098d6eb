//! Per-invocation Store data: the interfaces' states, the resource table,
//! and budget enforcement for memory and tables.
//!
//! What each interface holds is the interface's own ([`Interfaces`]); this
//! module only puts it in the Store beside what wasmtime itself needs, and
//! must never look inside an interface's state.

use crate::interfaces::{HostServices, Interfaces, InterfacesCtx, InterfacesView};
use crate::policy::{BudgetSection, Policy};
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;

pub use crate::interfaces::InvocationIdentity;

/// Everything a Store holds for one invocation. Nothing in it outlives the
/// invocation: each call gets a fresh Store and instance.
pub struct InvocationState {
    pub(crate) table: ResourceTable,
    pub(crate) limiter: BudgetLimiter,
    /// Every interface's per-invocation state.
    pub(crate) interfaces: Interfaces,
    /// When the wall time runs out (`None`: never), asked at every epoch
    /// tick (the sandbox's `yield_every_tick_until`).
    pub(crate) deadline: Option<std::time::Instant>,
}

impl InterfacesView for InvocationState {
    fn interfaces(&mut self) -> InterfacesCtx<'_> {
        InterfacesCtx {
            states: &mut self.interfaces,
            table: &mut self.table,
        }
    }
}

/// Most resources (descriptors, streams, HTTP fields and requests,
/// pollables, …) one invocation may hold at once, in the host's resource
/// table and in wasmtime's own handle tables. Each can hold host memory
/// (an HTTP `fields` up to
/// [`MAX_HTTP_FIELDS_BYTES`](crate::interfaces::http::MAX_HTTP_FIELDS_BYTES)),
/// so the count bounds what a guest can make the host keep: wasmtime's
/// defaults (100,000 handles, 1,000,000 table entries) would let it pin
/// gigabytes. Past it the guest traps.
pub const MAX_LIVE_HANDLES: usize = 4096;

impl InvocationState {
    /// Builds the state for one invocation of a capability under `policy`.
    /// Fails only if a preopened directory cannot be opened (it was checked
    /// at load, so it vanished since). `links_imports`: whether the
    /// component imports anything (see [`Interfaces::new`]).
    pub fn new(
        policy: &Policy,
        id: &InvocationIdentity<'_>,
        services: &Arc<HostServices>,
        links_imports: bool,
    ) -> std::io::Result<InvocationState> {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_LIVE_HANDLES);
        let interfaces = Interfaces::new(
            &policy.imports,
            &policy.source,
            policy.budget.max_stdout.bytes(),
            id,
            services,
            links_imports,
        )?;
        if policy.capability.payloads == crate::policy::PayloadRetention::HashOnly {
            // Nothing recorded would be stored: do not pay for recording.
            crate::interfaces::recording::lock(&interfaces.recording).keep_nothing();
        }
        Ok(InvocationState {
            table,
            limiter: BudgetLimiter::new(&policy.budget),
            interfaces,
            deadline: None,
        })
    }
}

/// Enforces the memory and table budgets and records peak memory.
pub struct BudgetLimiter {
    memory_limit: u64,
    table_elements: usize,
    /// Bytes of linear memory currently allocated across all memories.
    memory_now: u64,
    /// Highest `memory_now` seen.
    pub(crate) peak_memory: u64,
    /// Set when a growth was refused for crossing the memory budget.
    pub(crate) memory_refused: bool,
    /// Set when a table growth was refused.
    pub(crate) table_refused: bool,
}

impl BudgetLimiter {
    pub(super) fn new(budget: &BudgetSection) -> BudgetLimiter {
        BudgetLimiter {
            memory_limit: budget.memory.bytes(),
            table_elements: usize::try_from(budget.table_elements).unwrap_or(usize::MAX),
            memory_now: 0,
            peak_memory: 0,
            memory_refused: false,
            table_refused: false,
        }
    }
}
impl ResourceLimiter for BudgetLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let next = self.memory_now.saturating_add(growth);
        if next > self.memory_limit {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_now = next;
        self.peak_memory = self.peak_memory.max(next);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            self.table_refused = true;
            return Ok(false);
        }
        Ok(true)
    }
}
