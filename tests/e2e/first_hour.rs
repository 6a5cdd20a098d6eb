//! The first hour of a new user (issue 16): the README's guided tour run as
//! written, a deployment from `warden init`, tokens from `warden token
//! create`, and the client commands' readable output.

use crate::daemon::{Daemon, SUBMIT, cap, deploy};
use crate::support::*;
use std::path::Path;
use std::process::Command;

/// The `sh` blocks between `<!-- tour:begin -->` and `<!-- tour:end -->` in
/// README.md, in order, as one script.
fn tour_script() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let tour = readme
        .split("<!-- tour:begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- tour:end -->").next())
        .expect("README.md has the tour markers");
    tour.split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A port nobody listens on now (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn the_readme_tour_runs_as_written() {
    let script = tour_script();
    assert!(
        script.contains("warden new hello") && script.contains("warden audit verify"),
        "the tour goes from `warden new` to `warden audit verify`:\n{script}"
    );
    let dir = scratch("tour");
    let bin_dir = warden_bin().parent().expect("bin dir").to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&dir)
        .env("PATH", path)
        // The tour's daemon listens where `warden init` says (7878); the
        // test moves it to a free port, for the daemon and its clients.
        .env("WARDEN_LISTEN", format!("127.0.0.1:{port}"))
        .env("WARDEN_URL", format!("http://127.0.0.1:{port}"))
        // The scaffolded crate builds into its own target/ as the tour says.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the tour failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    // What the README shows is what happened.
    assert!(stdout.contains("\"hello got: hi\""), "{stdout}");
    assert!(
        stderr.contains("pending_approval: held for single approval"),
        "{stderr}"
    );
    assert!(
        stdout.contains("approvers   anyone with the approve role"),
        "{stdout}"
    );
    assert!(
        stdout.contains("executed  1/1 approvals  hello#run  by submitter  ended -> ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains("3 entries, 1 checkpoints checked"),
        "{stdout}"
    );
    assert!(stdout.contains("ok: head 3 sha256:"), "{stdout}");
}

fn init(dir: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec![
        "init",
        dir.to_str().expect("utf8"),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    warden(&args)
}

#[test]
fn an_initialised_deployment_starts_at_once_and_its_tokens_hold_their_roles() {
    let dir = scratch("init").join("deploy");
    let (code, out, err) = init(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("tokens/submitter.token"), "{out}");
    assert!(!out.contains("wdn_"), "init never prints a token: {out}");
    let d = Daemon::start(&dir);
    let token = |name: &str| {
        std::fs::read_to_string(dir.join(format!("tokens/{name}.token")))
            .expect("token file")
            .trim()
            .to_owned()
    };
    let (code, out, err) = d.cli(&["capabilities"], &token("submitter"));
    assert_eq!(code, 0, "a submitter lists capabilities: {err}");
    assert_eq!(out, "", "nothing is served yet");
    let (code, _, err) = d.cli(&["audit", "tail"], &token("auditor"));
    assert_eq!(code, 0, "the auditor reads the audit log: {err}");
    let (code, _, err) = d.cli(&["audit", "tail"], &token("submitter"));
    assert_eq!(code, 2, "a submitter does not: {err}");
    let (code, _, err) = d.cli(&["approvals", "list"], &token("approver"));
    assert_eq!(code, 0, "the approver lists approvals: {err}");
    let (code, _) = d.terminate();
    assert_eq!(code, 0);
}

#[test]
fn a_created_token_is_accepted_once_its_block_is_in_warden_toml() {
    let dir = scratch("token").join("deploy");
    let (code, _, err) = init(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    let token_file = dir.join("tokens/ci.token");
    let (code, out, err) = warden(&[
        "token",
        "create",
        "--name",
        "ci",
        "--role",
        "audit",
        "--out",
        token_file.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0, "{err}");
    let block = &out[out.find("[[principal]]").expect("a principal block")..];
    let config = dir.join("warden.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push('\n');
    text.push_str(block);
    std::fs::write(&config, text).expect("config");
    let token = std::fs::read_to_string(&token_file).expect("token file");
    assert!(
        !out.contains(token.trim()),
        "--out keeps the token off the terminal"
    );
    let d = Daemon::start(&dir);
    let (code, _, err) = d.cli(&["audit", "tail"], token.trim());
    assert_eq!(code, 0, "the new principal has the audit role: {err}");
    let (code, _, err) = d.cli(&["submit", "--kind", "x"], token.trim());
    assert_eq!(code, 2, "and only that role: {err}");
}

#[test]
fn token_create_refuses_an_unknown_role_and_a_non_canonical_name() {
    let (code, _, err) = warden(&["token", "create", "--role", "root"]);
    assert_eq!(code, 2);
    assert!(err.contains("--role \"root\": not a role"), "{err}");
    let (code, _, err) = warden(&["token", "create", "--name", "Alice"]);
    assert_eq!(code, 2);
    assert!(err.contains("--name \"Alice\""), "{err}");
}

#[test]
fn init_refuses_a_directory_that_holds_files() {
    let dir = scratch("init-full");
    std::fs::write(dir.join("warden.toml"), "# mine\n").expect("write");
    let (code, _, err) = init(&dir, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.join("warden.toml")).expect("kept"),
        "# mine\n"
    );
}

#[test]
fn submit_prints_the_capabilitys_err_payload_and_sends_attributes() {
    let mut all = cap("all-types", "all-types");
    all.imports = STD_IMPORTS;
    let dir = deploy("submit-err", &[all], &[], "");
    std::fs::write(
        dir.join("routes.toml"),
        "[[route]]\nid = \"eu\"\nmatch = { kind = \"try\", attributes = { region = \"eu\" } }\n\
         capability = \"all-types\"\nfunction = \"try-it\"\n",
    )
    .expect("routes");
    let d = Daemon::start(&dir);
    let (code, out, err) = d.cli(
        &[
            "submit",
            "--kind",
            "try",
            "--attr",
            "region=eu",
            "--input",
            r#"{"v":"fail"}"#,
        ],
        SUBMIT,
    );
    assert_eq!(code, 18, "capability_error exit code: {err}");
    assert!(err.contains("capability_error"), "{err}");
    assert!(out.contains("\"err\""), "the err payload is printed: {out}");
    let (code, _, err) = d.cli(
        &[
            "submit",
            "--kind",
            "try",
            "--attr",
            "region=us",
            "--input",
            r#"{"v":"fail"}"#,
        ],
        SUBMIT,
    );
    assert_eq!(code, 11, "another attribute value matches no route: {err}");
    let (code, _, err) = d.cli(&["submit", "--kind", "try", "--attr", "region"], SUBMIT);
    assert_eq!(code, 2);
    assert!(err.contains("is not KEY=VALUE"), "{err}");
}

#[test]
fn capabilities_lists_each_export_by_name() {
    let dir = deploy("caps-names", &[cap("echo", "echo")], &[], "");
    let d = Daemon::start(&dir);
    let (code, out, err) = d.cli(&["capabilities"], SUBMIT);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("    echo: func("), "{out}");
}

#[test]
fn a_sighup_reload_says_what_changed() {
    let dir = deploy(
        "hup-says",
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        "",
    );
    let d = Daemon::start(&dir);
    std::fs::write(
        dir.join("routes.toml"),
        crate::daemon::routes_toml(&[("shout", "shout", "echo", "echo")]),
    )
    .expect("routes");
    d.signal("-HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !d.audit().iter().any(|e| e["entry"]["event"] == "reload") {
        assert!(std::time::Instant::now() < deadline, "no reload entry");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, err) = d.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warden: reload (SIGHUP) applied: route table sha256:"),
        "{err}"
    );
}

#[test]
fn warden_dev_builds_signs_serves_and_reloads_a_capability_when_its_source_changes() {
    let dir = scratch("dev").join("devcap");
    let (code, _, err) = warden(&["new", "devcap", "--dir", dir.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    // No policy: `warden dev` writes one from the component's imports.
    std::fs::remove_file(dir.join("policy.toml")).expect("rm policy");
    let ready = dir.join("ready");
    let mut child = Command::new(warden_bin())
        .args(["dev", "--watch", "--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .current_dir(&dir)
        // Cached across runs: the scaffold's dependencies build once.
        .env("CARGO_TARGET_DIR", repo().join("target/dev-loop"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("warden dev");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(&ready)
            && !a.is_empty()
        {
            break a;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("warden dev exited ({status}):\n{err}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "warden dev did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let child = Kill(child);
    let policy = std::fs::read_to_string(dir.join("policy.toml")).expect("policy written");
    assert!(policy.contains("name = \"devcap\""), "{policy}");
    let token = std::fs::read_to_string(dir.join(".warden-dev/dev.token")).expect("token");
    let client = warden_host::server::client::Client::new(
        &format!("http://{addr}"),
        Some(token.trim().to_owned()),
    )
    .expect("client");
    let call = || {
        client
            .post_json(
                "/v1/requests",
                &serde_json::json!({"kind": "run", "input": {"input": "hi"}}),
            )
            .expect("request")
            .json()
    };
    let first = call();
    assert_eq!(first["output"], "devcap got: hi", "{first}");
    assert!(
        first["component_digest"].as_str().is_some(),
        "served signed: {first}"
    );
    let src = dir.join("src/lib.rs");
    let text = std::fs::read_to_string(&src).expect("src");
    std::fs::write(&src, text.replace("got: {input}", "now says: {input}")).expect("edit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let now = call();
        if now["output"] == "devcap now says: hi" {
            assert_ne!(now["component_digest"], first["component_digest"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload after the edit: {now}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    drop(child);
    let (code, _, err) = warden(&[
        "dev",
        dir.to_str().expect("utf8"),
        "--listen",
        "0.0.0.0:7999",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("loopback only"), "{err}");
}
