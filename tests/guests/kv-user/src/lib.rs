//! Guest that imports `warden:host/kv` (grant tests: refused at load unless
//! the policy grants kv).
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "warden-test:kv-user/kv-user",
    generate_all,
});

use warden::host::kv;

struct G;

fn err(e: warden::host::types::Error) -> String {
    format!("{e:?}")
}

impl Guest for G {
    fn put(key: String, value: String) -> Result<(), String> {
        kv::set(&key, value.as_bytes()).map_err(err)
    }

    fn fetch(key: String) -> Result<Option<String>, String> {
        match kv::get(&key).map_err(err)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| e.to_string()),
        }
    }
}

export!(G);
