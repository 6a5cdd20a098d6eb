//! Guest that imports `warden:host/kv`: grant tests (refused at load unless
//! the policy grants kv), isolation, quotas and rollback.
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

    fn remove(key: String) -> Result<(), String> {
        kv::delete(&key).map_err(err)
    }

    fn list_keys(prefix: String) -> Result<Vec<String>, String> {
        kv::list_keys(&prefix).map_err(err)
    }

    fn fill(prefix: String, count: u32, size: u32) -> Result<u32, String> {
        let value = vec![b'x'; size as usize];
        for i in 0..count {
            kv::set(&format!("{prefix}{i}"), &value).map_err(err)?;
        }
        Ok(count)
    }

    fn put_then_trap(key: String, value: String) {
        kv::set(&key, value.as_bytes()).expect("set");
        panic!("failing after a kv write");
    }

    fn put_then_err(key: String, value: String) -> Result<(), String> {
        kv::set(&key, value.as_bytes()).map_err(err)?;
        Err("failing after a kv write".into())
    }

    fn get_many(key: String, count: u32) -> Result<u32, String> {
        Ok((0..count).filter(|_| kv::get(&key).is_ok()).count() as u32)
    }

    fn put_and_read(key: String, value: String) -> Result<Option<String>, String> {
        kv::set(&key, value.as_bytes()).map_err(err)?;
        Self::fetch(key)
    }
}

export!(G);
