//! `inventory`: reserve and release stock per order in the capability's KV
//! namespace. Both calls are idempotent per (order, SKU), so a workflow
//! step re-run after a crash (at-least-once) holds stock once. Writes are
//! kept only when the invocation ends `ok` (docs/interfaces.md).

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:inventory/inventory",
    with: {
        "warden:host/types@0.1.0": warden_sdk::types,
        "warden:host/kv@0.1.0": warden_sdk::kv,
    },
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use warden_sdk::kv;

/// Units on hand of a SKU never seen before.
const INITIAL_STOCK: u32 = 100;

struct Inventory;

fn name(what: &str, value: &str) -> Result<(), String> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "{what} `{value}` must be 1-64 letters, digits, `-` or `_`"
        ));
    }
    Ok(())
}

fn host_err(e: warden_sdk::Error) -> String {
    format!("kv: {e:?}")
}

fn read_u32(key: &str) -> Result<Option<u32>, String> {
    match kv::get(key).map_err(host_err)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .parse()
            .map(Some)
            .map_err(|e| format!("`{key}` does not hold a count: {e}")),
    }
}

fn write_u32(key: &str, n: u32) -> Result<(), String> {
    kv::set(key, n.to_string().as_bytes()).map_err(host_err)
}

impl Guest for Inventory {
    fn reserve(order: String, sku: String, units: u32) -> Result<Hold, String> {
        name("order", &order)?;
        name("sku", &sku)?;
        if units == 0 {
            return Err("reserve at least 1 unit".into());
        }
        let stock_key = format!("stock/{sku}");
        let hold_key = format!("hold/{order}/{sku}");
        let on_hand = read_u32(&stock_key)?.unwrap_or(INITIAL_STOCK);
        if let Some(held) = read_u32(&hold_key)? {
            return Ok(Hold {
                order,
                sku,
                units: held,
                left: on_hand,
            });
        }
        let left = on_hand
            .checked_sub(units)
            .ok_or_else(|| format!("only {on_hand} of `{sku}` left, {units} asked for"))?;
        write_u32(&stock_key, left)?;
        write_u32(&hold_key, units)?;
        Ok(Hold {
            order,
            sku,
            units,
            left,
        })
    }

    fn release(order: String, sku: String) -> Result<u32, String> {
        name("order", &order)?;
        name("sku", &sku)?;
        let stock_key = format!("stock/{sku}");
        let hold_key = format!("hold/{order}/{sku}");
        let Some(held) = read_u32(&hold_key)? else {
            return Ok(0);
        };
        let on_hand = read_u32(&stock_key)?.unwrap_or(INITIAL_STOCK);
        write_u32(&stock_key, on_hand.saturating_add(held))?;
        kv::delete(&hold_key).map_err(host_err)?;
        Ok(held)
    }
}

export!(Inventory);
