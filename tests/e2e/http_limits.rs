//! The daemon's connection layer under hostile clients (issue 14, item 5):
//! slowloris connections, trickled bodies and connection floods against a
//! real `warden serve` on loopback. Every loop here is bounded.

use crate::daemon::{Daemon, SUBMIT, cap, deploy};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn echo_daemon(name: &str, http: &str) -> Daemon {
    let dir = deploy(
        name,
        &[cap("echo", "echo")],
        &[("greet", "greet", "echo", "echo")],
        &format!("[http]\n{http}\n"),
    );
    Daemon::start(&dir)
}

fn connect(d: &Daemon) -> TcpStream {
    let addr = d.url().trim_start_matches("http://").to_string();
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Whether the daemon has closed `s` (EOF or reset), waiting up to `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A response (e.g. 408 or 503) before the close: keep reading.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Reads what the daemon sends until it closes the connection or `wait` passes.
fn read_answer(s: &mut TcpStream, wait: Duration) -> String {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&out).contains("\r\n\r\n{") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /healthz` on a fresh connection.
fn healthz(d: &Daemon) -> String {
    let mut s = connect(d);
    s.write_all(b"GET /healthz HTTP/1.1\r\nhost: warden\r\nconnection: close\r\n\r\n")
        .expect("send");
    read_answer(&mut s, Duration::from_secs(10))
}

/// The head of a `POST /v1/requests` announcing `len` body bytes.
fn submit_head(len: usize) -> String {
    format!(
        "POST /v1/requests HTTP/1.1\r\nhost: warden\r\nauthorization: Bearer {SUBMIT}\r\n\
         content-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    )
}

#[test]
fn slowloris_connections_are_closed_and_never_lock_out_a_fresh_client() {
    const CAP: usize = 8;
    let d = echo_daemon(
        "slowloris",
        &format!("max_connections = {CAP}\nheader_read_timeout = \"3s\"\nidle_timeout = \"60s\""),
    );
    // Three times as many partial request lines as the daemon may hold.
    let started = Instant::now();
    let mut partial: Vec<TcpStream> = (0..3 * CAP)
        .map(|_| {
            let mut s = connect(&d);
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: war")
                .expect("partial head");
            s
        })
        .collect();
    // (a) a fresh client is still answered while the flood is open.
    let answer = healthz(&d);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // (d) the connections past the cap were closed at once (well before
    // the header timeout): the oldest partial ones made room.
    let mut closed = 0;
    for s in &mut partial {
        if closed_within(s, Duration::from_millis(50)) {
            closed += 1;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the flood was opened too slowly to tell the cap from the timeout"
    );
    assert!(
        closed > 2 * CAP,
        "at most {CAP} connections stay open; {closed} of {} were closed",
        partial.len()
    );
    // (b) the rest are closed by the header-read timeout, not before it.
    let open: Vec<&mut TcpStream> = partial
        .iter_mut()
        .filter_map(|s| (!closed_within(s, Duration::from_millis(1))).then_some(s))
        .collect();
    assert!(
        !open.is_empty(),
        "some partial connections fit under the cap"
    );
    for s in open {
        let left = Duration::from_secs(10).saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left),
            "a partial request head was held past the header-read timeout"
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "closed after {took:?}, header_read_timeout is 3s"
    );
    let answer = healthz(&d);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let metrics = d
        .client(crate::daemon::AUDIT)
        .get("/metrics")
        .expect("metrics")
        .text();
    assert!(
        metrics.contains("warden_connections_closed_total{reason=\"header_timeout\"}")
            && metrics.contains("warden_connections_closed_total{reason=\"evicted\"}"),
        "{metrics}"
    );
}

#[test]
fn a_trickled_body_is_cut_off_and_requests_past_the_open_limit_are_shed_unread() {
    let d = echo_daemon(
        "trickle",
        "max_open_requests = 2\nbody_read_timeout = \"2s\"",
    );
    let body = br#"{"kind": "greet", "input": {"message": "slow"}}"#;
    // Two clients announce a body and send it one byte every 100ms: far
    // slower than the 2s deadline allows.
    let trickled: Vec<(TcpStream, Instant)> = (0..2)
        .map(|_| {
            let mut s = connect(&d);
            s.write_all(submit_head(body.len() + 1000).as_bytes())
                .expect("head");
            (s, Instant::now())
        })
        .collect();
    // Give both heads time to be admitted (they hold the two slots).
    std::thread::sleep(Duration::from_millis(300));
    // A third request over the limit is refused before its body is read:
    // it never sends one, and is answered anyway.
    let mut shed = connect(&d);
    shed.write_all(submit_head(100_000).as_bytes())
        .expect("head");
    let refused_at = Instant::now();
    let answer = read_answer(&mut shed, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"overloaded\""), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(refused_at.elapsed() < Duration::from_secs(2));
    // (c) the trickled bodies are cut off at the body-read timeout.
    std::thread::scope(|scope| {
        for (mut s, at) in trickled {
            scope.spawn(move || {
                let mut sent = 0;
                let mut cut = false;
                while at.elapsed() < Duration::from_secs(8) {
                    if s.write_all(&body[sent % body.len()..][..1]).is_err() {
                        cut = true;
                        break;
                    }
                    sent += 1;
                    if closed_within(&mut s, Duration::from_millis(100)) {
                        cut = true;
                        break;
                    }
                }
                let took = at.elapsed();
                assert!(cut, "a body trickled for {took:?} was never cut off");
                assert!(
                    took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
                    "cut off after {took:?}; body_read_timeout is 2s"
                );
            });
        }
    });
    // The slots are free again: a whole request goes through.
    let r = d.submit(serde_json::json!({"kind": "greet", "input": {"message": "hi"}}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_timed_out_body_is_answered_408_and_the_connection_closed() {
    let d = echo_daemon("body-408", "body_read_timeout = \"1s\"");
    let mut s = connect(&d);
    s.write_all(format!("{}{{\"kind\":", submit_head(200)).as_bytes())
        .expect("partial body");
    let answer = read_answer(&mut s, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "closed after the 408"
    );
}

#[test]
fn a_connection_past_the_cap_is_refused_at_once_when_every_connection_is_serving() {
    let d = echo_daemon(
        "conn-cap",
        "max_connections = 2\nbody_read_timeout = \"3s\"\nidle_timeout = \"1s\"",
    );
    // Two connections in the middle of a request (their bodies are late).
    let mut busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&d);
            s.write_all(submit_head(10).as_bytes()).expect("head");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut late = connect(&d);
    let at = Instant::now();
    let answer = read_answer(&mut late, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    assert!(closed_within(&mut late, Duration::from_secs(1)));
    assert!(at.elapsed() < Duration::from_secs(2), "refused promptly");
    for s in &mut busy {
        assert!(closed_within(s, Duration::from_secs(6)), "408 and closed");
    }
    // A connection that never sends a byte is closed at the idle timeout.
    let mut silent = connect(&d);
    let at = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)));
    let took = at.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(4),
        "closed after {took:?}; idle_timeout is 1s"
    );
    let answer = healthz(&d);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
