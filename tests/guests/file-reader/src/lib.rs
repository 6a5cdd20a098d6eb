//! Hostile guest: `read` reads a file (imports wasi:filesystem).
wit_bindgen::generate!({ world: "file-reader" });

struct G;

impl Guest for G {
    fn read(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    }
}

export!(G);
