//! Per-invocation state: the WASI context built from grants, the resource
//! table, budget enforcement for memory and tables, captured output.

use super::clocks::{CountingMonotonicClock, FixedWallClock, seed};
use crate::interfaces::HostServices;
use crate::interfaces::calls::HostCallLog;
use crate::interfaces::fs::{FsAudit, FsView, WriteBudget};
use crate::interfaces::http::EgressHooks;
use crate::interfaces::kv::{KvState, KvView};
use crate::interfaces::model::{ModelState, ModelView};
use crate::policy::{BudgetSection, ClockMode, DirMode, GrantKind, Policy, PreopenDir, RandomMode};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Everything a Store holds for one invocation. Nothing in it outlives the
/// invocation: each call gets a fresh Store and instance.
pub struct InvocationState {
    /// Built on first use from `wasi_plan` (see [`InvocationState::wasi_ctx`]).
    wasi: Option<WasiCtx>,
    wasi_plan: WasiPlan,
    pub(crate) table: ResourceTable,
    pub(crate) limiter: BudgetLimiter,
    pub(crate) log: crate::interfaces::log::LogState,
    /// `warden:host/kv` state, when granted.
    pub(crate) kv: Option<KvState>,
    /// `warden:host/model` state, when granted.
    pub(crate) model: Option<ModelState>,
    /// `wasi:http` context and warden's egress hooks.
    pub(crate) http_ctx: WasiHttpCtx,
    pub(crate) http_hooks: EgressHooks,
    /// Summaries of host calls with authority.
    pub(crate) calls: HostCallLog,
    /// Descriptor origins and summaries of `wasi:filesystem` calls.
    pub(crate) fs: FsAudit,
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| self.wasi_plan.build());
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// What the invocation's WASI context is made of, decided from the policy
/// when the state is created. Building the context itself (clocks, seeded
/// random generators, stdio pipes) is deferred to the first WASI call: a
/// component that makes none (e.g. one with no WASI imports) never pays for
/// it, and one that does gets exactly the context it would have had.
struct WasiPlan {
    /// Cap on each captured stream (`max_stdout`).
    capture_cap: usize,
    /// Captured stdout and stderr, created with the context.
    captured: Option<(MemoryOutputPipe, MemoryOutputPipe)>,
    /// The virtual wall clock's reading, unless the system clock is granted.
    fixed_wall: Option<Duration>,
    virtual_monotonic: bool,
    /// The request id seeding random, unless system random is granted.
    seeded_from: Option<String>,
    /// A builder already holding the preopens, when the policy grants any
    /// (opened eagerly so a vanished directory fails before the call).
    preopened: Option<WasiCtxBuilder>,
}

impl WasiPlan {
    fn build(&mut self) -> WasiCtx {
        let mut b = self.preopened.take().unwrap_or_default();
        let cap = self.capture_cap;
        let (stdout, stderr) = self
            .captured
            .get_or_insert_with(|| (MemoryOutputPipe::new(cap), MemoryOutputPipe::new(cap)));
        b.stdout(stdout.clone()).stderr(stderr.clone());
        if let Some(since_epoch) = self.fixed_wall {
            b.wall_clock(FixedWallClock { since_epoch });
        }
        if self.virtual_monotonic {
            b.monotonic_clock(CountingMonotonicClock::default());
        }
        if let Some(request_id) = &self.seeded_from {
            b.secure_random(StdRng::from_seed(seed(request_id, "secure")));
            b.insecure_random(StdRng::from_seed(seed(request_id, "insecure")));
            let s = seed(request_id, "insecure-seed");
            let mut first = [0u8; 16];
            first.copy_from_slice(&s[..16]);
            b.insecure_random_seed(u128::from_le_bytes(first));
        }
        b.build()
    }
}

impl WasiHttpView for InvocationState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// Identity of the invocation, used to derive virtual time and seeds.
#[derive(Debug, Clone, Copy)]
pub struct InvocationIdentity<'a> {
    /// The request id (seeds random).
    pub request_id: &'a str,
    /// Admission time (the virtual wall clock reads this).
    pub admitted_at: SystemTime,
    /// The capability name (log records, kv namespace).
    pub capability: &'a str,
    /// The tenant the invocation runs for (kv namespace); `None`: tenant-less.
    pub tenant: Option<&'a crate::tenant::Tenant>,
}

/// Most resources (descriptors, streams, HTTP fields and requests,
/// pollables, …) one invocation may hold at once, in the host's resource
/// table and in wasmtime's own handle tables. Each can hold host memory
/// (an HTTP `fields` up to [`MAX_HTTP_FIELDS_BYTES`]), so the count bounds
/// what a guest can make the host keep: wasmtime's defaults (100,000
/// handles, 1,000,000 table entries) would let it pin gigabytes. Past it the
/// guest traps.
pub const MAX_LIVE_HANDLES: usize = 4096;

/// Most bytes of names and values one `wasi:http` `fields` (a header block
/// the guest builds) may hold; an `append`/`set` past it traps the guest
/// (`wasi:http@0.2` has no error case for it). wasmtime-wasi-http's default
/// is 128 KiB.
pub const MAX_HTTP_FIELDS_BYTES: usize = 16 << 10;

impl InvocationState {
    /// Builds the state for one invocation of a capability under `policy`.
    /// Fails only if a preopened directory cannot be opened (it was checked
    /// at load, so it vanished since).
    pub fn new(
        policy: &Policy,
        id: &InvocationIdentity<'_>,
        services: &Arc<HostServices>,
    ) -> std::io::Result<InvocationState> {
        let cap = usize::try_from(policy.budget.max_stdout.bytes()).unwrap_or(usize::MAX);
        let mut preopened: Option<WasiCtxBuilder> = None;
        let mut wall = ClockMode::Virtual;
        let mut monotonic = ClockMode::Virtual;
        let mut random = RandomMode::Seeded;
        let mut log_limits = None;
        let mut kv = None;
        let mut model = None;
        let mut http = None;
        let mut write_budgets = Vec::new();
        for g in &policy.imports {
            match (&g.kind, g.name.interface.as_str()) {
                (GrantKind::Clock { mode }, "wall-clock") => wall = *mode,
                (GrantKind::Clock { mode }, _) => monotonic = *mode,
                (GrantKind::Random { mode }, _) if *mode == RandomMode::System => {
                    random = RandomMode::System
                }
                (GrantKind::Log(limits), _) => log_limits = Some(*limits),
                (GrantKind::Kv(limits), _) => {
                    kv = Some(KvState::new(
                        services.kv.clone(),
                        crate::interfaces::kv::Namespace::new(id.capability, id.tenant),
                        *limits,
                    ))
                }
                (GrantKind::Model(grant), _) => {
                    model = Some(ModelState::new(grant.clone(), services.clone()))
                }
                (GrantKind::Http(grant), _) => http = Some(grant.clone()),
                (GrantKind::Preopens(p), _) => {
                    let b = preopened.get_or_insert_with(WasiCtxBuilder::new);
                    for dir in &p.dirs {
                        let perms = match dir.mode {
                            DirMode::ReadOnly => FsPerms::ReadOnly,
                            DirMode::ReadWrite => FsPerms::ReadWrite,
                        };
                        b.preopened_dir(preopen_host_path(policy, dir), &dir.guest, perms)
                            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
                        write_budgets.push(WriteBudget {
                            preopen: dir.guest.as_str().into(),
                            limit: (dir.mode == DirMode::ReadWrite)
                                .then(|| dir.max_write_bytes.bytes()),
                            used: 0,
                        });
                    }
                }
                _ => {}
            }
        }
        let wasi_plan = WasiPlan {
            capture_cap: cap,
            captured: None,
            fixed_wall: (wall == ClockMode::Virtual).then(|| {
                id.admitted_at
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
            }),
            virtual_monotonic: monotonic == ClockMode::Virtual,
            seeded_from: (random == RandomMode::Seeded).then(|| id.request_id.to_string()),
            preopened,
        };
        Ok(InvocationState {
            wasi: None,
            wasi_plan,
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_LIVE_HANDLES);
                table
            },
            limiter: BudgetLimiter::new(&policy.budget),
            // Names only when log is granted: nothing else can write lines.
            log: match log_limits {
                Some(limits) => crate::interfaces::log::LogState::new(
                    limits,
                    id.capability.to_string(),
                    id.request_id.to_string(),
                ),
                None => crate::interfaces::log::LogState::new(
                    Default::default(),
                    String::new(),
                    String::new(),
                ),
            },
            kv,
            model,
            http_ctx: {
                let mut ctx = WasiHttpCtx::new();
                ctx.set_field_size_limit(MAX_HTTP_FIELDS_BYTES);
                ctx
            },
            http_hooks: EgressHooks::new(http, services.clone()),
            calls: HostCallLog::default(),
            fs: FsAudit::new(write_budgets),
        })
    }

    /// The invocation's WASI context, built on first use.
    pub(crate) fn wasi_ctx(&mut self) -> &mut WasiCtx {
        self.wasi.get_or_insert_with(|| self.wasi_plan.build())
    }

    /// The view `warden:host/kv` calls work on.
    pub(crate) fn kv_view(&mut self) -> KvView<'_> {
        KvView {
            kv: self.kv.as_mut(),
            calls: &mut self.calls,
        }
    }

    /// The view `warden:host/model` calls work on.
    pub(crate) fn model_view(&mut self) -> ModelView<'_> {
        ModelView {
            model: self.model.as_mut(),
            calls: &mut self.calls,
        }
    }

    /// The view `wasi:filesystem` calls work on: wasmtime-wasi's, observed.
    pub(crate) fn fs_view(&mut self) -> FsView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| self.wasi_plan.build());
        FsView {
            inner: WasiFilesystemCtxView {
                ctx: ctx.filesystem(),
                table: &mut self.table,
            },
            audit: &mut self.fs,
        }
    }

    /// Captured stdout (empty if the guest never reached WASI).
    pub(crate) fn stdout(&self) -> bytes::Bytes {
        self.wasi_plan
            .captured
            .as_ref()
            .map(|(out, _)| out.contents())
            .unwrap_or_default()
    }

    /// Captured stderr (empty if the guest never reached WASI).
    pub(crate) fn stderr(&self) -> bytes::Bytes {
        self.wasi_plan
            .captured
            .as_ref()
            .map(|(_, err)| err.contents())
            .unwrap_or_default()
    }

    /// Whether either captured stream hit its cap.
    pub(crate) fn capture_overflowed(&self) -> bool {
        let cap = self.wasi_plan.capture_cap;
        self.stdout().len() >= cap || self.stderr().len() >= cap
    }
}

/// Where a preopen's host directory is: absolute as written, or relative to
/// the directory of the policy file.
pub fn preopen_host_path(policy: &Policy, dir: &PreopenDir) -> PathBuf {
    let path = PathBuf::from(&dir.host);
    if path.is_absolute() {
        return path;
    }
    policy
        .source
        .parent()
        .map_or(path.clone(), |base| base.join(&path))
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
    fn new(budget: &BudgetSection) -> BudgetLimiter {
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
