//! The component binary at the level signing needs: the 8-byte preamble and
//! the sequence of top-level sections, with `warden-signature` custom
//! sections told apart from everything else.
//!
//! Only *top-level* sections are considered. Custom sections inside nested
//! core modules or components are part of those sections' bytes and so are
//! covered by the digest like any other byte.

use super::{SECTION_NAME, SigningError};
use std::borrow::Cow;
use std::ops::Range;
use wasm_encoder::{ComponentSection as _, CustomSection};
use wasmparser::{BinaryReader, Parser};

/// Section id of custom sections (same in core modules and components).
const CUSTOM_SECTION_ID: u8 = 0;

/// Length of the preamble: `\0asm` magic plus the 4-byte version/layer.
const PREAMBLE_LEN: usize = 8;

/// One top-level section: its full byte range (id, size, contents) and, for
/// a signature section, the range of its payload (after the name).
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub(crate) range: Range<usize>,
    pub(crate) signature_payload: Option<Range<usize>>,
}

/// Splits a component binary into its top-level sections.
pub(crate) fn sections(bytes: &[u8]) -> Result<Vec<Section>, SigningError> {
    if !Parser::is_component(bytes) {
        return Err(if Parser::is_core_wasm(bytes) {
            SigningError::CoreModule
        } else {
            SigningError::NotWasm
        });
    }
    let malformed = |offset: usize, what: &str| SigningError::Malformed {
        offset,
        reason: what.to_owned(),
    };
    let mut reader = BinaryReader::new(&bytes[PREAMBLE_LEN..], PREAMBLE_LEN);
    let mut out = Vec::new();
    while !reader.eof() {
        let start = reader.original_position();
        let id = reader
            .read_u8()
            .map_err(|_| malformed(start, "truncated section id"))?;
        let size = reader
            .read_var_u32()
            .map_err(|_| malformed(start, "bad section size"))?;
        let content_start = reader.original_position();
        let size = usize::try_from(size).map_err(|_| malformed(start, "section too large"))?;
        let content = reader.read_bytes(size).map_err(|_| {
            malformed(
                start,
                &format!("section of {size} bytes runs past the end of the file"),
            )
        })?;
        let end = content_start + size;
        let mut signature_payload = None;
        if id == CUSTOM_SECTION_ID {
            let mut name_reader = BinaryReader::new(content, content_start);
            let name = name_reader
                .read_string()
                .map_err(|_| malformed(start, "bad custom section name"))?;
            if name == SECTION_NAME {
                signature_payload = Some(name_reader.original_position()..end);
            }
        }
        out.push(Section {
            range: start..end,
            signature_payload,
        });
    }
    Ok(out)
}

/// Encodes a top-level custom section named [`SECTION_NAME`] holding
/// `payload` (id `0`, LEB128 size, LEB128 name length, name, payload), by
/// `wasm-encoder`.
pub(crate) fn encode_signature_section(payload: &[u8]) -> Vec<u8> {
    let section = CustomSection {
        name: Cow::Borrowed(SECTION_NAME),
        data: Cow::Borrowed(payload),
    };
    let mut out = Vec::with_capacity(1 + 5 + 1 + SECTION_NAME.len() + payload.len());
    section.append_to_component(&mut out);
    out
}

/// The bytes of the component with every top-level signature section removed.
pub(crate) fn strip(bytes: &[u8]) -> Result<Vec<u8>, SigningError> {
    let sections = sections(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..PREAMBLE_LEN]);
    for section in sections
        .iter()
        .filter(|section| section.signature_payload.is_none())
    {
        out.extend_from_slice(&bytes[section.range.clone()]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written encoder this module used before wasm-encoder: the
    /// reference the signature section's bytes must stay identical to
    /// (existing signed components must keep verifying).
    fn encode_by_hand(payload: &[u8]) -> Vec<u8> {
        fn leb_u32(out: &mut Vec<u8>, mut value: usize) {
            loop {
                let byte = (value & 0x7f) as u8;
                value >>= 7;
                if value == 0 {
                    out.push(byte);
                    return;
                }
                out.push(byte | 0x80);
            }
        }
        let name = SECTION_NAME.as_bytes();
        let mut contents = Vec::new();
        leb_u32(&mut contents, name.len());
        contents.extend_from_slice(name);
        contents.extend_from_slice(payload);
        let mut out = vec![CUSTOM_SECTION_ID];
        leb_u32(&mut out, contents.len());
        out.extend_from_slice(&contents);
        out
    }

    #[test]
    fn the_signature_section_bytes_are_those_of_the_hand_written_encoder() {
        // The real payload length, and lengths whose section size crosses
        // the one-, two- and three-byte LEB128 boundaries.
        for len in [
            0,
            1,
            super::super::PAYLOAD_LEN,
            110,
            111,
            16_366,
            16_367,
            70_000,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(
                encode_signature_section(&payload),
                encode_by_hand(&payload),
                "payload of {len} bytes"
            );
        }
    }

    #[test]
    fn the_real_signature_section_has_its_documented_prefix() {
        let payload = [7u8; super::super::PAYLOAD_LEN];
        let bytes = encode_signature_section(&payload);
        // id 0, size 148 (0x94 0x01), name length 16, "warden-signature".
        assert_eq!(&bytes[..4], &[0x00, 0x94, 0x01, 0x10]);
        assert_eq!(&bytes[4..20], SECTION_NAME.as_bytes());
        assert_eq!(&bytes[20..], &payload[..]);
    }
}
