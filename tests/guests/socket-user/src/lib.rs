//! Hostile guest: `connect` opens a TCP connection (imports wasi:sockets).
wit_bindgen::generate!({ world: "socket-user" });

struct G;

impl Guest for G {
    fn connect() -> String {
        match std::net::TcpStream::connect("127.0.0.1:1") {
            Ok(_) => "connected".to_string(),
            Err(e) => format!("error: {e}"),
        }
    }
}

export!(G);
