//! The README's first quickstart command, `cargo run --example demo`, runs
//! to the end: every part it prints is checked here, from the signed
//! example capabilities to the agent's MCP session and the order workflow
//! (one run completed, one compensated with its compensations in the
//! audit trail, one waiting for approvers then approved; the compensated
//! run's reservation given back: O-3 leaves 96 of 100 mugs, not 94), and
//! both audit chains it leaves verify.

use crate::support::{FX_PORT, repo};

#[test]
fn the_quickstart_demo_runs_every_part_and_both_of_its_chains_verify() {
    // The demo binds the example policies' fixed loopback ports itself.
    let _port = FX_PORT.blocking_lock();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(repo())
        .args(["run", "-q", "--example", "demo"])
        .output()
        .expect("running cargo run --example demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    for part in [
        "== signing the example capabilities with a development key ==",
        "== approvals: `refund` behind the daemon (policies/refund.toml) ==",
        "ben: approve -> executed (2/2 approvals)",
        "ben: deny -> denied (0/1 approvals)",
        "== an agent calls `refund` as an MCP tool (POST /mcp, protocol 2026-07-28) ==",
        "tools/list: refund (Refund an order; large refunds wait for a human.)",
        "agent: tools/call refund D-4 19.00 EUR -> {\"ok\":{\"refund-id\":\"rf-D-4-1900\"",
        "agent: tools/call refund D-5 140.00 EUR -> tool error: pending_approval:",
        "-> 200 {\"ok\":{\"refund-id\":\"rf-D-5-14000\"",
        "invocation pending_approval by agent via demo-agent/1.0",
        "== the order workflow: reserve -> risk score (model) -> note -> dual approval above 1000.00 -> charge (pivot) -> confirm ==",
        "step score    done         {\"level\":\"low\",\"from-model\":true,",
        "dual, group:finance); they see risk medium",
        "shop: order O-1 25.00 EUR -> 200 run ",
        "step charge   done         {\"charge-id\":\"ch-O-1-2500\"",
        "step confirm  done         \"order O-1: charged ch-O-1-2500\"",
        "shop: order O-2 2500.00 EUR -> 202 run ",
        "approve -> denied (0/2 approvals)",
        "step reserve  compensated",
        "step approve  failed       \"denied by `ben`: customer is over their credit limit\"",
        "workflow   approval_denied  .approve",
        "invocation ok               .note.compensate",
        "invocation ok               .reserve.compensate",
        "shop: order O-3 1800.00 EUR -> 202 run ",
        "waiting for approvers: approval ",
        "ben: approve ",
        "-> executed (2/2 approvals)",
        "step approve  done         {\"approved_by\":[\"ana\",\"ben\"]}",
        "step reserve  done         {\"order\":\"O-3\",\"sku\":\"mug\",\"units\":2,\"left\":96}",
        "daemon chain: ",
    ] {
        assert!(stdout.contains(part), "missing `{part}` in:\n{stdout}");
    }
    assert!(!stdout.contains("CHAIN BROKEN"), "{stdout}");
    assert_eq!(
        stdout.matches("chain verifies").count(),
        2,
        "both chains verify:\n{stdout}"
    );
}
