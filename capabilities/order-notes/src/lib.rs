//! `order-notes`: append and list notes per order id in the capability's
//! KV namespace (`order/<id>/<number>`). Writes are kept only when the
//! invocation ends `ok` (see docs/interfaces.md).

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:order-notes/order-notes",
    with: {
        "warden:host/types@0.1.0": warden_sdk::types,
        "warden:host/kv@0.1.0": warden_sdk::kv,
    },
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

use warden_sdk::kv;

/// Longest note accepted, in bytes.
const MAX_NOTE_BYTES: usize = 2000;

struct Notes;

fn prefix(order_id: &str) -> Result<String, String> {
    if order_id.is_empty()
        || order_id.len() > 64
        || !order_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "order id `{order_id}` must be 1-64 letters, digits, `-` or `_`"
        ));
    }
    Ok(format!("order/{order_id}/"))
}

fn host_err(e: warden_sdk::Error) -> String {
    format!("kv: {e:?}")
}

impl Guest for Notes {
    fn add_note(order_id: String, text: String) -> Result<u32, String> {
        let prefix = prefix(&order_id)?;
        let text = text.trim();
        if text.is_empty() || text.len() > MAX_NOTE_BYTES {
            return Err(format!("a note must be 1-{MAX_NOTE_BYTES} bytes"));
        }
        let existing = kv::list_keys(&prefix).map_err(host_err)?;
        let number = u32::try_from(existing.len() + 1).map_err(|e| e.to_string())?;
        kv::set(&format!("{prefix}{number:06}"), text.as_bytes()).map_err(host_err)?;
        Ok(number)
    }

    fn list_notes(order_id: String) -> Result<Vec<Note>, String> {
        let prefix = prefix(&order_id)?;
        let mut notes = Vec::new();
        for key in kv::list_keys(&prefix).map_err(host_err)? {
            let number = key[prefix.len()..].parse().unwrap_or(0);
            if let Some(bytes) = kv::get(&key).map_err(host_err)? {
                notes.push(Note {
                    number,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
        }
        Ok(notes)
    }
}

export!(Notes);
