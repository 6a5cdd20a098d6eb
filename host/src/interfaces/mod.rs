//! Host interfaces: one self-contained unit per interface warden links.
//!
//! Each unit (a module here, or a folder when it has several jobs, like
//! [`fs`]) owns everything about its interface: its grant settings and
//! their validation (declared in the [`catalogue`], which policies delegate
//! to), its per-invocation state, its linking (`add_to_linker<T>`, generic
//! over the store's data through an accessor), its budget overruns and its
//! audit summaries ([`calls`]). The sandbox never matches on an interface:
//! it builds one [`Interfaces`] per invocation, links through [`link`], and
//! asks every unit the same questions through [`HostInterface`].
//!
//! Every limit is a named, documented setting from the policy; a guest can
//! never raise one. Per-host resources the units share across invocations
//! (the KV store, model backends, static name resolution) live in
//! [`HostServices`]; the host builds it once and hands it to every
//! invocation.
//!
//! Dependency direction: `sandbox` -> `interfaces`, never back. Nothing here
//! names the sandbox's store data; it reaches its state through
//! [`InterfacesView`].
//!
//! # Adding an interface
//!
//! Write `interfaces/<name>.rs` with: its settings type and an [`Entry`]
//! (names, settings reader, `policy init` default) listed in the
//! catalogue's `ENTRIES` and in [`GrantKind`]; its state, a field of
//! [`Interfaces`] built in [`Interfaces::new`]; `add_to_linker<T>` and an
//! arm in [`link`]; and `impl HostInterface` (budget overruns, commit,
//! summaries), listed in [`Interfaces`]' unit order. docs/interfaces.md has
//! the long form.
//!
//! [`Entry`]: catalogue::Entry

pub mod calls;
pub mod catalogue;
pub mod clocks;
pub mod egress;
pub mod fs;
pub mod http;
pub mod invocation;
pub mod kv;
pub mod log;
pub mod model;
pub mod net;
pub mod random;
pub mod recording;
pub mod wasi;

pub use catalogue::{GrantKind, default_grant_settings, grant_kind};

use crate::outcome::{Budget, Outcome};
use calls::HostCallLog;
use catalogue::Unit;
use clocks::ClockMode;
use random::RandomMode;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::WasiCtxBuilder;

/// Host bindings generated from the repository's single WIT source (`wit/`).
pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "warden:host/imports",
        imports: {
            "warden:host/model.generate": async,
        },
    });
}

/// Resources shared by every invocation on one host.
pub struct HostServices {
    /// The scoped KV store.
    pub kv: Arc<kv::KvStore>,
    /// Model backends by the name policies grant.
    pub models: BTreeMap<String, model::ModelBackend>,
    /// Static name resolution used before DNS by outbound HTTP and model
    /// calls (`name -> addresses`, like `/etc/hosts` or curl's `--resolve`).
    pub hosts: BTreeMap<String, Vec<IpAddr>>,
    /// `warden audit replay`: the recorded results the next invocation is
    /// answered from (taken by it). `None` on a serving host.
    pub replay: std::sync::Mutex<Option<Vec<recording::Recorded>>>,
}

impl HostServices {
    /// Services with an in-memory KV store, no models and no static names
    /// (unit tests and embedders that need none of them).
    pub fn in_memory() -> Result<HostServices, kv::KvError> {
        Ok(HostServices {
            kv: Arc::new(kv::KvStore::in_memory()?),
            models: BTreeMap::new(),
            hosts: BTreeMap::new(),
            replay: std::sync::Mutex::new(None),
        })
    }
}

/// Identity of the invocation, used to derive virtual time and seeds.
#[derive(Debug, Clone, Copy)]
pub struct InvocationIdentity<'a> {
    /// The request id (seeds random).
    pub request_id: &'a str,
    /// The idempotency key `warden:host/invocation` answers: a workflow
    /// step's `<run id>.<step id>`, a request's `<principal>:<key>` when
    /// the client sent one, else the request id.
    pub idempotency_key: &'a str,
    /// Admission time (the virtual wall clock reads this).
    pub admitted_at: SystemTime,
    /// The capability name (log records, kv namespace).
    pub capability: &'a str,
    /// The tenant the invocation runs for (kv namespace); `None`: tenant-less.
    pub tenant: Option<&'a crate::tenant::Tenant>,
}

/// A budget one interface's calls crossed, and why (the message the
/// invocation record carries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetOverrun {
    /// Which budget: the outcome is `budget_exhausted:<budget>`.
    pub budget: Budget,
    /// Why, naming the setting.
    pub why: String,
}

/// Why an interface could not keep an invocation's effects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishError {
    /// Keeping them would cross a budget (the result is withheld).
    Budget(BudgetOverrun),
    /// The host failed (the invocation is `transient`; the message says
    /// the result is withheld).
    Failed(String),
}

/// What the sandbox asks of every interface's per-invocation state once the
/// guest's call has ended. Every method has a default: an interface
/// answers only what applies to it.
pub trait HostInterface {
    /// A budget a call crossed that ends the invocation
    /// `budget_exhausted:<budget>` whatever the guest did next (output
    /// withheld).
    fn overrun(&self) -> Option<BudgetOverrun> {
        None
    }

    /// A call refused for a budget (the guest saw an error and may have
    /// carried on): it names the outcome only of an invocation that then
    /// failed (trap or capability error).
    fn refused(&self) -> Option<BudgetOverrun> {
        None
    }

    /// Keeps the invocation's effects if it `ended` ok, discards them
    /// otherwise.
    fn finish(&mut self, ended: Outcome) -> Result<(), FinishError> {
        let _ = ended;
        Ok(())
    }

    /// Hands over summaries the interface kept itself (those not recorded
    /// in `calls` as the calls were made).
    fn summarise(&mut self, calls: &mut HostCallLog) {
        let _ = calls;
    }
}

/// A boxed interface answers as the interface.
impl<I: HostInterface> HostInterface for Box<I> {
    fn overrun(&self) -> Option<BudgetOverrun> {
        I::overrun(self)
    }
    fn refused(&self) -> Option<BudgetOverrun> {
        I::refused(self)
    }
    fn finish(&mut self, ended: Outcome) -> Result<(), FinishError> {
        I::finish(self, ended)
    }
    fn summarise(&mut self, calls: &mut HostCallLog) {
        I::summarise(self, calls)
    }
}

/// An interface that is not granted has nothing to say.
impl<I: HostInterface> HostInterface for Option<I> {
    fn overrun(&self) -> Option<BudgetOverrun> {
        self.as_ref().and_then(I::overrun)
    }
    fn refused(&self) -> Option<BudgetOverrun> {
        self.as_ref().and_then(I::refused)
    }
    fn finish(&mut self, ended: Outcome) -> Result<(), FinishError> {
        self.as_mut().map_or(Ok(()), |i| i.finish(ended))
    }
    fn summarise(&mut self, calls: &mut HostCallLog) {
        if let Some(i) = self {
            i.summarise(calls);
        }
    }
}

/// The per-invocation state of every interface: a fixed struct, built once
/// per invocation from the policy's grants (no per-interface allocation
/// beyond what each state holds).
pub struct Interfaces {
    /// The WASI context (cli, clocks, random, filesystem preopens).
    pub wasi: wasi::WasiState,
    /// `warden:host/log` (nameless when not granted).
    pub log: log::LogState,
    /// `warden:host/kv`, when granted (boxed, as `model`: most invocations
    /// have neither, and the Store data is moved several times per call).
    pub kv: Option<Box<kv::KvState>>,
    /// `warden:host/model`, when granted.
    pub model: Option<Box<model::ModelState>>,
    /// `wasi:http`.
    pub http: http::HttpState,
    /// `warden:host/invocation` (always built; linked only when granted).
    pub invocation: invocation::InvocationState,
    /// `wasi:filesystem` descriptor origins, summaries and write budgets.
    pub fs: fs::FsAudit,
    /// Summaries of host calls with authority.
    pub calls: HostCallLog,
    /// Results from outside the sandbox, recorded in call order (or the
    /// replay feed answering them).
    pub recording: recording::Shared,
}

impl Interfaces {
    /// The states of one invocation of a capability whose policy (read from
    /// `policy_file`) grants `grants` and allows `max_stdout` bytes of
    /// captured output. Fails only if a preopened directory cannot be
    /// opened (it was checked at load, so it vanished since).
    ///
    /// `reachable` false: the component imports nothing, so no host call
    /// can reach these states; what only a host call would read (the
    /// idempotency key it is told, the seed of its random) is not copied.
    pub fn new(
        grants: &[catalogue::Grant],
        policy_file: &std::path::Path,
        max_stdout: u64,
        id: &InvocationIdentity<'_>,
        services: &Arc<HostServices>,
        reachable: bool,
    ) -> std::io::Result<Interfaces> {
        let mut preopened: Option<WasiCtxBuilder> = None;
        let mut write_budgets = Vec::new();
        let mut wall = ClockMode::Virtual;
        let mut monotonic = ClockMode::Virtual;
        let mut random = RandomMode::Seeded;
        let mut log_limits = None;
        let mut kv = None;
        let mut model = None;
        let mut http = None;
        let feed = services
            .replay
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let recording: recording::Shared = Arc::new(std::sync::Mutex::new(match feed {
            Some(feed) => recording::Recording::replaying(feed),
            None => recording::Recording::default(),
        }));
        let replaying = recording::lock(&recording).is_replay();
        for g in grants {
            match &g.kind {
                GrantKind::Clock { mode } if g.name.interface == "wall-clock" => wall = *mode,
                GrantKind::Clock { mode } => monotonic = *mode,
                GrantKind::Random { mode } if *mode == RandomMode::System => {
                    random = RandomMode::System
                }
                GrantKind::Log(limits) => log_limits = Some(*limits),
                GrantKind::Kv(limits) => {
                    kv = Some(Box::new(
                        kv::KvState::new(
                            services.kv.clone(),
                            kv::Namespace::new(id.capability, id.tenant),
                            *limits,
                        )
                        .recorded_in(recording.clone()),
                    ))
                }
                GrantKind::Model(grant) => {
                    model = Some(Box::new(
                        model::ModelState::new(grant.clone(), services.clone())
                            .recorded_in(recording.clone()),
                    ))
                }
                GrantKind::Http(grant) => http = Some(grant.clone()),
                GrantKind::Preopens(dirs) if replaying => {
                    // A replay answers from the recording: nothing is opened.
                    write_budgets.extend(fs::write_budgets(dirs));
                }
                GrantKind::Preopens(dirs) => {
                    fs::open_preopens(
                        preopened.get_or_insert_with(WasiCtxBuilder::new),
                        policy_file,
                        dirs,
                        &mut write_budgets,
                    )?;
                }
                GrantKind::AuthorityFree | GrantKind::CapturedOutput | GrantKind::Random { .. } => {
                }
            }
        }
        let capture_cap = usize::try_from(max_stdout).unwrap_or(usize::MAX);
        let fixed_wall = (wall == ClockMode::Virtual).then(|| {
            id.admitted_at
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
        });
        Ok(Interfaces {
            wasi: wasi::WasiState::new(
                capture_cap,
                fixed_wall,
                monotonic == ClockMode::Virtual,
                (reachable && random == RandomMode::Seeded).then(|| id.request_id.to_string()),
                preopened,
                recording.clone(),
            ),
            log: log::LogState::for_invocation(log_limits, id),
            kv,
            model,
            http: http::HttpState::new(http, services.clone(), recording.clone()),
            invocation: invocation::InvocationState::new(
                if reachable { id.idempotency_key } else { "" },
                recording.clone(),
            ),
            fs: fs::FsAudit::new(write_budgets, recording.clone(), replaying),
            calls: HostCallLog::default(),
            recording,
        })
    }

    /// Every unit, in the order the sandbox consults them. The order is
    /// observable: the first overrun (then the first refusal) names the
    /// outcome — HTTP, then tokens, then KV, then the filesystem.
    fn units(&self) -> [&dyn HostInterface; 5] {
        [&self.http, &self.model, &self.kv, &self.fs, &self.log]
    }

    /// [`Interfaces::units`], mutably, beside the call log they report to.
    fn units_mut(&mut self) -> ([&mut dyn HostInterface; 5], &mut HostCallLog) {
        (
            [
                &mut self.http,
                &mut self.model,
                &mut self.kv,
                &mut self.fs,
                &mut self.log,
            ],
            &mut self.calls,
        )
    }

    /// The first budget a call crossed, in unit order: the invocation ends
    /// `budget_exhausted:<budget>` whatever the guest did.
    pub fn overrun(&self) -> Option<BudgetOverrun> {
        self.units().into_iter().find_map(HostInterface::overrun)
    }

    /// The first call refused for a budget, in unit order (names the
    /// outcome of a failing invocation).
    pub fn refused(&self) -> Option<BudgetOverrun> {
        self.units().into_iter().find_map(HostInterface::refused)
    }

    /// Keeps (`ended` ok) or discards every unit's effects; the first unit
    /// that fails stops the others from keeping theirs.
    pub fn finish(&mut self, ended: Outcome) -> Result<(), FinishError> {
        let (units, _) = self.units_mut();
        for unit in units {
            unit.finish(ended)?;
        }
        Ok(())
    }

    /// Collects every unit's summaries into the call log: itemised calls
    /// (kv, model as made; HTTP once bodies ended), then the filesystem's.
    pub fn summarise(&mut self) {
        let (units, calls) = self.units_mut();
        for unit in units {
            unit.summarise(calls);
        }
    }
}

/// How the interfaces reach their state inside a Store's data, like
/// wasmtime-wasi's `WasiView`: the sandbox implements it for its own store
/// data; nothing here names that type.
pub trait InterfacesView: Send + 'static {
    /// The invocation's interface states and the resource table they share.
    fn interfaces(&mut self) -> InterfacesCtx<'_>;
}

/// Borrowed interface states and resource table of one Store.
pub struct InterfacesCtx<'a> {
    /// The states.
    pub states: &'a mut Interfaces,
    /// The resource table (descriptors, streams, HTTP fields, ...).
    pub table: &'a mut ResourceTable,
}

impl<'a> InterfacesCtx<'a> {
    fn kv(self) -> kv::KvView<'a> {
        kv::KvView {
            kv: self.states.kv.as_deref_mut(),
            calls: &mut self.states.calls,
        }
    }

    fn model(self) -> model::ModelView<'a> {
        model::ModelView {
            model: self.states.model.as_deref_mut(),
            calls: &mut self.states.calls,
        }
    }

    fn fs(self) -> fs::FsView<'a> {
        let Interfaces { wasi, fs, .. } = self.states;
        fs::FsView {
            inner: wasmtime_wasi::filesystem::WasiFilesystemCtxView {
                ctx: wasi.ctx().filesystem(),
                table: self.table,
            },
            audit: fs,
        }
    }

    fn cli(self) -> wasmtime_wasi::cli::WasiCliCtxView<'a> {
        wasmtime_wasi::cli::WasiCliCtxView {
            ctx: self.states.wasi.ctx().cli(),
            table: self.table,
        }
    }

    fn clocks(self) -> wasmtime_wasi::clocks::WasiClocksCtxView<'a> {
        wasmtime_wasi::clocks::WasiClocksCtxView {
            ctx: self.states.wasi.ctx().clocks(),
            table: self.table,
        }
    }

    fn http(self) -> wasmtime_wasi_http::WasiHttpCtxView<'a> {
        self.states.http.view(self.table)
    }
}

/// Links the granted interface `name` (as the component imports it,
/// unversioned in `id`) into `l`, through the unit that owns it.
pub fn link<T: InterfacesView>(
    l: &mut Linker<T>,
    name: &crate::names::InterfaceName,
    full: &str,
) -> wasmtime::Result<()> {
    let id = name.unversioned();
    let entry = catalogue::entry(name).map_err(|e| wasmtime::format_err!("{e}"))?;
    match entry.unit {
        Unit::Io => wasi::add_io_to_linker(l, &id, |s| s.interfaces().table),
        Unit::Cli => wasi::add_cli_to_linker(l, &id, |s| s.interfaces().cli()),
        Unit::Clocks => clocks::add_to_linker(l, &id, |s| s.interfaces().clocks()),
        Unit::Random => {
            random::add_to_linker(l, &id, |s| s.interfaces().states.wasi.ctx().random())
        }
        Unit::Fs => fs::add_to_linker(l, &id, |s| s.interfaces().fs()),
        Unit::WardenTypes => l.instance(full).map(|_| ()),
        Unit::Log => log::add_to_linker(l, |s| &mut s.interfaces().states.log),
        Unit::Kv => kv::add_to_linker(l, |s| s.interfaces().kv()),
        Unit::Model => model::add_to_linker(l, |s| s.interfaces().model()),
        Unit::Http => http::add_to_linker(l, &id, |s| s.interfaces().http()),
        Unit::Invocation => invocation::add_to_linker(l, |s| &mut s.interfaces().states.invocation),
    }
}

#[cfg(test)]
mod tests {
    use super::bindings::warden::host::kv::Host as _;
    use super::*;

    const GRANTS: &str = r#"
[capability]
name = "c"
component = "c.wasm"

[imports]
"warden:host/kv" = {}
"warden:host/model" = { models = ["m"] }
"#;

    fn interfaces(policy: &str, services: &Arc<HostServices>) -> Interfaces {
        let policy =
            crate::policy::Policy::parse(std::path::Path::new("c.toml"), policy).expect("policy");
        let id = InvocationIdentity {
            request_id: "r-1",
            idempotency_key: "r-1",
            admitted_at: SystemTime::UNIX_EPOCH,
            capability: "c",
            tenant: None,
        };
        Interfaces::new(
            &policy.imports,
            &policy.source,
            policy.budget.max_stdout.bytes(),
            &id,
            services,
            true,
        )
        .expect("interfaces")
    }

    fn services() -> Arc<HostServices> {
        Arc::new(HostServices::in_memory().expect("services"))
    }

    #[test]
    fn the_first_overrun_in_unit_order_names_the_outcome() {
        let mut i = interfaces(GRANTS, &services());
        assert_eq!(i.overrun(), None);
        i.kv.as_mut().expect("kv granted").overrun = Some("kv: calls".into());
        i.model.as_mut().expect("model granted").overrun = Some("tokens: spent".into());
        let first = i.overrun().expect("overrun");
        assert_eq!(
            (first.budget, first.why.as_str()),
            (Budget::Tokens, "tokens: spent")
        );
        i.model.as_mut().expect("model granted").overrun = None;
        assert_eq!(i.overrun().map(|o| o.budget), Some(Budget::Kv));
    }

    #[test]
    fn refusals_are_asked_in_the_same_order_and_apart_from_overruns() {
        let mut i = interfaces(GRANTS, &services());
        i.kv.as_mut().expect("kv granted").refused = Some("kv: quota".into());
        assert_eq!(i.overrun(), None, "a refusal is not an overrun");
        assert_eq!(i.refused().map(|o| o.budget), Some(Budget::Kv));
        i.model.as_mut().expect("model granted").refused = Some("tokens: none left".into());
        assert_eq!(i.refused().map(|o| o.budget), Some(Budget::Tokens));
    }

    #[test]
    fn kv_writes_are_kept_only_when_the_invocation_ends_ok() {
        let services = services();
        let ns = kv::Namespace::new("c", None);
        for (ended, kept) in [(Outcome::Trap, false), (Outcome::Ok, true)] {
            let mut i = interfaces(GRANTS, &services);
            let mut table = ResourceTable::new();
            let mut view = InterfacesCtx {
                states: &mut i,
                table: &mut table,
            }
            .kv();
            view.set("k".into(), b"v".to_vec()).expect("set");
            assert_eq!(i.finish(ended), Ok(()));
            let stored = services.kv.get(&ns, "k").expect("read");
            assert_eq!(stored.is_some(), kept, "ended {ended}");
        }
    }

    #[test]
    fn a_commit_over_a_quota_is_a_kv_budget_overrun() {
        let services = services();
        let tight = GRANTS.replace(
            "\"warden:host/kv\" = {}",
            "\"warden:host/kv\" = { max_keys = 1 }",
        );
        let mut first = interfaces(&tight, &services);
        let mut second = interfaces(&tight, &services);
        for (i, key) in [(&mut first, "a"), (&mut second, "b")] {
            let mut table = ResourceTable::new();
            let mut view = InterfacesCtx {
                states: i,
                table: &mut table,
            }
            .kv();
            view.set(key.into(), b"v".to_vec())
                .expect("within the quota alone");
        }
        assert_eq!(first.finish(Outcome::Ok), Ok(()));
        match second.finish(Outcome::Ok) {
            Err(FinishError::Budget(o)) => assert_eq!(o.budget, Budget::Kv, "{}", o.why),
            other => panic!("expected a kv overrun, got {other:?}"),
        }
    }

    #[test]
    fn an_invocation_granted_nothing_reports_nothing() {
        let mut i = interfaces(
            "[capability]\nname = \"c\"\ncomponent = \"c.wasm\"\n",
            &services(),
        );
        assert!(i.kv.is_none() && i.model.is_none());
        assert_eq!(i.overrun(), None);
        assert_eq!(i.refused(), None);
        assert_eq!(i.finish(Outcome::Ok), Ok(()));
        i.summarise();
        assert!(i.calls.into_summaries().is_empty());
    }

    /// The dependency direction is sandbox -> interfaces: no file under
    /// `interfaces/` may name the sandbox (an import cycle would be back).
    #[test]
    fn interfaces_never_name_the_sandbox() {
        fn check(dir: &std::path::Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read interfaces/") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    check(&path, found);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read source");
                    for (n, line) in text.lines().enumerate() {
                        if line.contains(concat!("crate::", "sandbox")) {
                            found.push(format!("{}:{}", path.display(), n + 1));
                        }
                    }
                }
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/interfaces");
        let mut found = Vec::new();
        check(&dir, &mut found);
        assert!(found.is_empty(), "interfaces name the sandbox: {found:?}");
    }
}
