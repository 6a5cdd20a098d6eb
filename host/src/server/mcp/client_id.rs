//! Which client program made an MCP request: the `name/version` label an
//! audit entry records (docs/mcp.md "Audit"), from the client's own
//! `clientInfo`. It is self-reported, like a User-Agent: it names the
//! program, it never authenticates anything (the principal does that).
//!
//! Over streamable HTTP a 2025-11-25 client sends its `clientInfo` only
//! with `initialize`, and `/mcp` keeps no session. So the answer to such an
//! `initialize` carries an `Mcp-Session-Id` that *is* the label
//! (`w1.<base64url(label)>.<nonce>`): the client echoes it on every later
//! request, and the label comes back with no state kept on the server.
//!
//! Labels are made here only, bounded and without control characters,
//! whichever way they arrive. This module must never let a label decide
//! anything but what is recorded.

use base64ct::{Base64UrlUnpadded, Encoding};
use serde_json::Value;

/// At most this many characters of the client's `name`, and of its
/// `version`, are recorded.
pub const MAX_PART: usize = 128;

/// The longest `Mcp-Session-Id` that is decoded (a longer one is ignored).
const MAX_SESSION_ID: usize = 1024;

/// The first revision whose clients send `clientInfo` with every request
/// (`_meta`); older ones get the session id.
const STATELESS_REVISION: &str = "2026-07-28";

/// The recorded label of a client calling itself `name` `version`:
/// `name/version`, each part cut to [`MAX_PART`] characters, control
/// characters replaced by `?`.
pub fn label(name: &str, version: &str) -> String {
    let part = |s: &str| -> String {
        s.chars()
            .take(MAX_PART)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    format!("{}/{}", part(name), part(version))
}

/// The `Mcp-Session-Id` to answer an `initialize` request `body` with: the
/// client's label, when the body is an `initialize` of a revision before
/// 2026-07-28 that names the client. Only the method, the revision and
/// `clientInfo` are looked at.
pub fn session_for_initialize(body: &[u8]) -> Option<String> {
    let message: Value = serde_json::from_slice(body).ok()?;
    if message.get("method")?.as_str()? != "initialize" {
        return None;
    }
    let params = message.get("params")?;
    let revision = params.get("protocolVersion")?.as_str()?;
    if revision >= STATELESS_REVISION {
        return None;
    }
    let info = params.get("clientInfo")?;
    let name = info.get("name")?.as_str()?;
    let version = info.get("version").and_then(Value::as_str).unwrap_or("");
    Some(session_id(&label(name, version)))
}

/// The session id carrying `label`, unique per `initialize` (a nonce), in
/// visible ASCII as the spec requires.
fn session_id(label: &str) -> String {
    let mut nonce = [0u8; 8];
    // A nonce that could not be drawn leaves the id unique per label only:
    // it is a name, not a secret.
    let _ = getrandom::fill(&mut nonce);
    format!(
        "w1.{}.{}",
        Base64UrlUnpadded::encode_string(label.as_bytes()),
        Base64UrlUnpadded::encode_string(&nonce)
    )
}

/// The label an `Mcp-Session-Id` this server minted carries; `None` for
/// anything else (another server's id, a truncated or forged one: the
/// request is then recorded without a client).
pub fn from_session_id(id: &str) -> Option<String> {
    if id.len() > MAX_SESSION_ID {
        return None;
    }
    let mut parts = id.split('.');
    let (Some("w1"), Some(encoded), Some(_nonce), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = Base64UrlUnpadded::decode_vec(encoded).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (name, version) = text.split_once('/')?;
    // Made again, so a forged id is held to the same bounds.
    Some(label(name, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_is_cut_to_its_bound_and_loses_control_characters() {
        let long = "n".repeat(MAX_PART + 50);
        let l = label(&long, "1.0\n\u{1b}[31m");
        assert_eq!(l, format!("{}/1.0??[31m", "n".repeat(MAX_PART)));
    }

    #[test]
    fn an_old_revisions_initialize_gets_a_session_id_that_gives_its_label_back() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"agent","version":"1.2"}}}"#;
        let id = session_for_initialize(body).expect("a session id");
        assert!(id.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{id}");
        assert_eq!(from_session_id(&id).as_deref(), Some("agent/1.2"));
        // Unique per initialize.
        assert_ne!(session_for_initialize(body), Some(id));
    }

    #[test]
    fn a_stateless_revision_or_another_method_gets_no_session_id() {
        let new = br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","clientInfo":{"name":"a","version":"1"}}}"#;
        assert_eq!(session_for_initialize(new), None);
        let call = br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#;
        assert_eq!(session_for_initialize(call), None);
        assert_eq!(session_for_initialize(b"not json"), None);
    }

    #[test]
    fn a_forged_session_id_is_held_to_the_same_bounds_and_garbage_names_no_client() {
        let huge = "x".repeat(600);
        let forged = format!(
            "w1.{}.AAAA",
            Base64UrlUnpadded::encode_string(format!("{huge}/1\u{7}").as_bytes())
        );
        assert_eq!(
            from_session_id(&forged),
            Some(format!("{}/1?", "x".repeat(MAX_PART)))
        );
        for bad in [
            "",
            "w1",
            "w2.YQ.AAAA",
            "w1.!!!.AAAA",
            "w1.YQ.AAAA.extra",
            &"w1.".repeat(400),
        ] {
            assert_eq!(from_session_id(bad), None, "{bad}");
        }
        // Decodes to text without a `/`: no label.
        let no_slash = format!("w1.{}.AAAA", Base64UrlUnpadded::encode_string(b"agent"));
        assert_eq!(from_session_id(&no_slash), None);
    }
}
