//! Tenants (issue 14, item 6): KV namespaces are (capability, tenant),
//! principals are bound to tenants, tenant names are canonical, and a
//! `kv.db` written before tenants is migrated only explicitly.

use crate::daemon::{Cap, Daemon, cap, deploy};
use crate::support::*;
use serde_json::{Value, json};
use std::path::Path;
use warden_host::server::auth::token_hash;
use warden_host::{Call, Outcome, Tenant};

const ACME: &str = "tok-acme";
const GLOBEX: &str = "tok-globex";
const ANY: &str = "tok-any";

fn notes_cap() -> Cap {
    let mut c = cap("notes", "kv-user");
    c.imports = Box::leak(
        format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {{}}")
            .into_boxed_str(),
    );
    c
}

/// A deployment of the kv-user guest as `notes`, with principals bound to
/// `acme`, to `globex` and to any tenant (plus the tenant-less `alice`).
fn notes_deploy(name: &str) -> std::path::PathBuf {
    let principals: String = [
        ("acme-app", ACME, "[\"acme\"]"),
        ("globex-app", GLOBEX, "[\"globex\"]"),
        ("any-app", ANY, "[\"*\"]"),
    ]
    .iter()
    .map(|(n, t, tenants)| {
        format!(
            "[[principal]]\nname = \"{n}\"\ntoken_sha256 = \"{}\"\nroles = [\"submit\"]\ntenants = {tenants}\n\n",
            token_hash(t)
        )
    })
    .collect();
    deploy(
        name,
        &[notes_cap()],
        &[
            ("put", "note.put", "notes", "put"),
            ("fetch", "note.fetch", "notes", "fetch"),
            ("list", "note.list", "notes", "list-keys"),
        ],
        &principals,
    )
}

fn request(kind: &str, input: Value, tenant: Option<&str>) -> Value {
    let mut body = json!({"kind": kind, "input": input});
    if let Some(t) = tenant {
        body["tenant"] = json!(t);
    }
    body
}

fn submit(d: &Daemon, token: &str, body: &Value) -> (u16, Value) {
    let r = d
        .client(token)
        .post_json("/v1/requests", body)
        .expect("request");
    (r.status, r.json())
}

fn fetch(d: &Daemon, token: &str, tenant: Option<&str>) -> Value {
    let (status, body) = submit(
        d,
        token,
        &request("note.fetch", json!({"key": "note/1"}), tenant),
    );
    assert_eq!(status, 200, "{body}");
    body["output"].clone()
}

#[test]
fn a_principal_bound_to_acme_cannot_submit_for_globex_and_the_refusal_is_audited() {
    let d = Daemon::start(&notes_deploy("tenant-bound"));
    let put_for =
        |tenant: Option<&str>| request("note.put", json!({"key": "note/1", "value": "x"}), tenant);
    let (status, body) = submit(&d, ACME, &put_for(Some("globex")));
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["outcome"], "denied");
    assert_eq!(body["error_code"], "tenant_forbidden");
    let why = body["error"].as_str().expect("why");
    assert!(
        why.contains("`acme-app`") && why.contains("`globex`"),
        "{why}"
    );
    let id = body["request_id"].as_str().expect("id").to_string();
    let seq = body["audit"]["seq"]
        .as_u64()
        .expect("the refusal is audited");
    let entry = d
        .audit()
        .into_iter()
        .find(|e| e["seq"] == seq)
        .expect("entry listed");
    assert_eq!(entry["entry"]["request_id"], id.as_str());
    assert_eq!(entry["entry"]["outcome"], "denied");
    assert_eq!(entry["entry"]["principal"], "acme-app");
    assert_eq!(
        entry["entry"]["detail"],
        json!({"tenant": "globex"}).to_string()
    );

    // Bound to tenants: a tenant-less request is refused too.
    let (status, body) = submit(&d, ACME, &put_for(None));
    assert_eq!(
        (status, body["error_code"].clone()),
        (403, json!("tenant_forbidden"))
    );
    // Bound to no tenant: only tenant-less requests.
    let (status, _) = submit(&d, crate::daemon::SUBMIT, &put_for(Some("acme")));
    assert_eq!(status, 403);
    // An idempotency key does not get around the binding either.
    let mut keyed = put_for(Some("globex"));
    keyed["idempotency_key"] = json!("k-tenant");
    assert_eq!(submit(&d, ACME, &keyed).0, 403);
    assert_eq!(submit(&d, ACME, &keyed).0, 403);
    // Nothing ran: the refused writes are not in globex's namespace.
    assert_eq!(fetch(&d, GLOBEX, Some("globex")), json!({"ok": null}));
    let metrics = d
        .client(crate::daemon::AUDIT)
        .get("/metrics")
        .expect("metrics")
        .text();
    assert!(
        metrics.contains("warden_denials_total{reason=\"tenant\"} 5"),
        "{metrics}"
    );
}

#[test]
fn tenant_names_are_canonicalised_at_admission_and_others_are_refused_naming_them() {
    let d = Daemon::start(&notes_deploy("tenant-canonical"));
    let put = |tenant: &str| {
        request(
            "note.put",
            json!({"key": "note/1", "value": "upper"}),
            Some(tenant),
        )
    };
    // `ACME` is `acme`: the same principal binding, the same namespace.
    let (status, body) = submit(&d, ACME, &put("ACME"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tenant"], "acme");
    assert_eq!(fetch(&d, ACME, Some("acme")), json!({"ok": "upper"}));
    for bad in ["ac me", "acme ", "acmé", "", "../globex", &"a".repeat(64)] {
        let (status, body) = submit(&d, ACME, &put(bad));
        assert_eq!(status, 422, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_tenant", "{body}");
        let message = body["error"]["message"].as_str().expect("message");
        if !bad.is_empty() && bad.len() <= 63 {
            assert!(message.contains(&format!("{bad:?}")), "{message}");
        }
    }
}

#[test]
fn acme_kv_writes_are_invisible_to_globex_and_to_tenant_less_requests() {
    let d = Daemon::start(&notes_deploy("tenant-kv"));
    let (status, body) = submit(
        &d,
        ACME,
        &request(
            "note.put",
            json!({"key": "note/1", "value": "acme secret"}),
            Some("acme"),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "ok");
    assert_eq!(body["tenant"], "acme");

    assert_eq!(fetch(&d, ACME, Some("acme")), json!({"ok": "acme secret"}));
    assert_eq!(fetch(&d, GLOBEX, Some("globex")), json!({"ok": null}));
    assert_eq!(fetch(&d, crate::daemon::SUBMIT, None), json!({"ok": null}));
    // Any-tenant principals reach each tenant's namespace only by naming it.
    assert_eq!(fetch(&d, ANY, None), json!({"ok": null}));
    assert_eq!(fetch(&d, ANY, Some("globex")), json!({"ok": null}));
    assert_eq!(fetch(&d, ANY, Some("acme")), json!({"ok": "acme secret"}));
    let (_, listed) = submit(
        &d,
        GLOBEX,
        &request("note.list", json!({"prefix": ""}), Some("globex")),
    );
    assert_eq!(listed["output"], json!({"ok": []}), "{listed}");

    // A tenant-less write lands in the tenant-less namespace only.
    let (status, _) = submit(
        &d,
        crate::daemon::SUBMIT,
        &request(
            "note.put",
            json!({"key": "note/1", "value": "shared"}),
            None,
        ),
    );
    assert_eq!(status, 200);
    assert_eq!(fetch(&d, ANY, None), json!({"ok": "shared"}));
    assert_eq!(fetch(&d, ACME, Some("acme")), json!({"ok": "acme secret"}));

    // The stored answer of an acme request is not readable by a principal
    // of another tenant, even with the request id.
    let id = body["request_id"].as_str().expect("id");
    let got = d
        .client(GLOBEX)
        .get(&format!("/v1/requests/{id}"))
        .expect("get");
    assert_eq!(got.status, 404);
    let got = d
        .client(ACME)
        .get(&format!("/v1/requests/{id}"))
        .expect("get");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["response"]["tenant"], "acme");
}

/// Writes `data/kv.db` under `dir` as warden wrote it before tenants.
fn old_layout_kv(dir: &Path, rows: &[(&str, &str, &str)]) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let c = rusqlite::Connection::open(data.join("kv.db")).expect("open");
    c.execute_batch(
        "CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, \
         PRIMARY KEY (namespace, key)) WITHOUT ROWID;",
    )
    .expect("old schema");
    for (ns, k, v) in rows {
        c.execute(
            "INSERT INTO kv (namespace, key, value) VALUES (?1, ?2, ?3)",
            rusqlite::params![ns, k, v.as_bytes()],
        )
        .expect("row");
    }
}

#[test]
fn an_old_layout_kv_db_stops_the_daemon_until_warden_kv_migrate_moves_it() {
    let dir = notes_deploy("tenant-migrate");
    old_layout_kv(&dir, &[("notes", "note/1", "legacy")]);
    let config = dir.join("warden.toml");
    let config = config.to_str().expect("utf-8 path");
    let (code, _, err) = warden(&["serve", "--config", config]);
    assert_ne!(code, 0, "{err}");
    let data = dir.join("data");
    let data = data.to_str().expect("utf-8 path");
    assert!(
        err.contains("capability-only layout")
            && err.contains(&format!("warden kv migrate --data-dir {data}")),
        "{err}"
    );

    let (code, out, err) = warden(&["kv", "migrate", "--data-dir", data, "--tenant", "acme"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("moved 1 row(s) of 1 capability(ies)"), "{out}");
    let (code, out, _) = warden(&["kv", "migrate", "--data-dir", data]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to do"), "{out}");

    let d = Daemon::start(&dir);
    assert_eq!(fetch(&d, ACME, Some("acme")), json!({"ok": "legacy"}));
    assert_eq!(fetch(&d, crate::daemon::SUBMIT, None), json!({"ok": null}));
    assert_eq!(fetch(&d, GLOBEX, Some("globex")), json!({"ok": null}));
}

#[test]
fn warden_kv_migrate_without_a_tenant_moves_rows_to_the_tenant_less_namespace() {
    let dir = notes_deploy("tenant-migrate-none");
    old_layout_kv(&dir, &[("notes", "note/1", "legacy")]);
    let data = dir.join("data");
    let (code, out, err) = warden(&[
        "kv",
        "migrate",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let d = Daemon::start(&dir);
    assert_eq!(
        fetch(&d, crate::daemon::SUBMIT, None),
        json!({"ok": "legacy"})
    );
    assert_eq!(fetch(&d, ACME, Some("acme")), json!({"ok": null}));
}

#[tokio::test]
async fn the_library_scopes_kv_by_the_calls_tenant() {
    let mut h = host();
    let imports = format!("{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {{}}");
    load(&mut h, policy("kv-user", &imports, ""), "kv-user");
    let acme = Tenant::parse("acme").expect("tenant");
    let put =
        Call::new("kv-user", "put", json!({"key": "k", "value": "acme"})).for_tenant(acme.clone());
    let r = h.invoke(put).await;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.tenant.as_ref(), Some(&acme));
    let get = |tenant: Option<&Tenant>| {
        let mut c = Call::new("kv-user", "fetch", json!({"key": "k"}));
        c.tenant = tenant.cloned();
        c
    };
    let globex = Tenant::parse("globex").expect("tenant");
    assert_eq!(
        h.invoke(get(Some(&acme))).await.output,
        Some(json!({"ok": "acme"}))
    );
    assert_eq!(
        h.invoke(get(Some(&globex))).await.output,
        Some(json!({"ok": null}))
    );
    assert_eq!(h.invoke(get(None)).await.output, Some(json!({"ok": null})));
}

#[test]
fn warden_run_tenant_selects_the_tenants_kv_namespace() {
    let dir = scratch("run-tenant");
    let policy = dir.join("kv-user.toml");
    std::fs::write(
        &policy,
        format!(
            "[capability]\nname = \"kv-user\"\ncomponent = \"kv_user.wasm\"\n\n[imports]\n{STD_IMPORTS}\n\"warden:host/types\" = {{}}\n\"warden:host/kv\" = {{}}\n"
        ),
    )
    .expect("policy");
    let wasm = guest("kv-user");
    let data = dir.join("data");
    let run = |function: &str, input: &str, tenant: Option<&str>| {
        let mut args = vec![
            "run",
            wasm.to_str().expect("utf-8"),
            "-p",
            policy.to_str().expect("utf-8"),
            "-c",
            function,
            "-i",
            input,
            "--allow-unsigned",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ];
        if let Some(t) = tenant {
            args.extend(["--tenant", t]);
        }
        warden(&args)
    };
    let (code, out, err) = run("put", r#"{"key":"k","value":"acme"}"#, Some("Acme"));
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = run("fetch", r#"{"key":"k"}"#, Some("acme"));
    assert!(out.contains("\"acme\""), "{out}");
    let (_, out, _) = run("fetch", r#"{"key":"k"}"#, None);
    assert!(out.contains("null"), "{out}");
    let (code, _, err) = run("fetch", r#"{"key":"k"}"#, Some("ac me"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--tenant") && err.contains("\"ac me\""),
        "{err}"
    );
}
