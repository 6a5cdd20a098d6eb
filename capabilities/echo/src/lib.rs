//! `echo`: returns its input unchanged. No imports; the smallest useful
//! capability (benchmarks, quickstart).

warden_sdk::wit_bindgen::generate!({
    path: ["../../wit", "wit"],
    world: "warden-cap:echo/echo",
    runtime_path: "warden_sdk::wit_bindgen::rt",
});

struct Echo;

impl Guest for Echo {
    fn echo(message: String) -> String {
        message
    }
}

export!(Echo);
