//! `invoice-reconcile`: matches invoices against ledger lines.
//!
//! Pure computation, no imports. The matching lives in [`logic`], which is
//! plain Rust and unit-tested natively (`cargo test` in `capabilities/`).

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:invoice-reconcile/invoice-reconcile",
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

pub mod logic;

struct Reconciler;

impl Guest for Reconciler {
    fn reconcile(invoices: Vec<Invoice>, ledger: Vec<LedgerLine>) -> Reconciliation {
        let inv: Vec<(&str, i64)> = invoices.iter().map(|i| (i.id.as_str(), i.amount_cents)).collect();
        let led: Vec<(&str, i64)> = ledger.iter().map(|l| (l.ref_.as_str(), l.amount_cents)).collect();
        let r = logic::reconcile(&inv, &led);
        Reconciliation {
            matched: r.matched.into_iter().map(|i| invoices[i].id.clone()).collect(),
            unmatched_invoices: r.unmatched_invoices.into_iter().map(|i| invoices[i].id.clone()).collect(),
            unmatched_lines: r.unmatched_lines.into_iter().map(|i| ledger[i].ref_.clone()).collect(),
            discrepancies: r
                .discrepancies
                .into_iter()
                .map(|(i, l)| Discrepancy {
                    invoice_id: invoices[i].id.clone(),
                    expected_cents: invoices[i].amount_cents,
                    actual_cents: ledger[l].amount_cents,
                })
                .collect(),
        }
    }
}

export!(Reconciler);
