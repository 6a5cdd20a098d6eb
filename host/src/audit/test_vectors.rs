//! Published test vectors of the formats the transparency log speaks,
//! checked against warden's own code (docs/audit.md "Interoperability").
//! Every vector below was produced by another implementation and is
//! vendored verbatim as data, with its source; none of their code is used.
//!
//! - RFC 6962 Merkle tree: leaf inputs, every complete-subtree hash, the
//!   roots of sizes 0..=8, and inclusion and consistency proofs, from the
//!   reference data of `github.com/transparency-dev/merkle`
//!   (`testonly/constants.go`, `proof/verify_test.go`; originally the
//!   Certificate Transparency C++ tests).
//! - C2SP signed-note: the Ed25519 vectors of Go's `golang.org/x/mod/sumdb/note`
//!   (`note_test.go`: the `PeterNeumann` signer and verifier keys and its
//!   signature, the `EnochRoot` verifier key and its signature), and the
//!   verifier key and note of the signed-note specification's example
//!   (`example.com/foo`).
//! - C2SP tlog-witness: the example `add-checkpoint` request body of the
//!   specification (`tlog-witness.md`).
//! - C2SP tlog-cosignature: the example signed message and cosigned
//!   checkpoint of the specification (`tlog-cosignature.md`).
//!
//! This module must never be compiled outside tests, and must never
//! compute an expected value with the code under test.

use super::merkle::{
    Frontier, NodeSource, ProofError, node_hash, prove_consistency, prove_inclusion, root_at,
    verify_consistency, verify_inclusion,
};
use super::note::{
    COSIGNATURE_TYPE, ED25519_TYPE, NoteSignature, SignedNote, cosign, note_key_id, verifier_key,
};
use super::witness::AddCheckpoint;
use crate::digest::Hash256;
use base64ct::{Base64, Encoding};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

fn h(hex_text: &str) -> Hash256 {
    let raw = hex::decode(hex_text).expect("hex");
    Hash256(raw.try_into().expect("32 bytes"))
}

// --- RFC 6962 (transparency-dev/merkle testonly/constants.go) -------------

/// `LeafInputs()`.
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// `NodeHashes()`: level, then index within the level.
const NODE_HASHES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

/// `RootHashes()`: the root of every size 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// `inclusionProofs` of proof/verify_test.go: (1-based leaf, size, path).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        3,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        2,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// `consistencyProofs` of proof/verify_test.go: (size1, size2, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

/// The stored nodes of the vector tree, built by warden's [`Frontier`].
struct Nodes(HashMap<(u32, u64), Hash256>);

impl NodeSource for Nodes {
    fn node(&self, level: u32, index: u64) -> Result<Hash256, ProofError> {
        self.0
            .get(&(level, index))
            .copied()
            .ok_or(ProofError::Node {
                level,
                index,
                reason: "absent".into(),
            })
    }
}

/// RFC 6962 leaf hash of an arbitrary input (warden's own leaves are
/// always 32-byte entry hashes; the vectors' inputs are not).
fn rfc6962_leaf(input: &str) -> Hash256 {
    let mut d = Sha256::new();
    d.update([0x00]);
    d.update(hex::decode(input).expect("hex"));
    Hash256(d.finalize().into())
}

/// The vector tree grown by warden's frontier, with the root after each leaf.
fn vector_tree() -> (Nodes, Vec<Hash256>) {
    let mut f = Frontier::new();
    let mut nodes = HashMap::new();
    let mut roots = vec![f.root()];
    for input in LEAF_INPUTS {
        f.append(rfc6962_leaf(input), |(level, index, hash)| {
            nodes.insert((level, index), hash);
        });
        roots.push(f.root());
    }
    (Nodes(nodes), roots)
}

#[test]
fn the_rfc6962_reference_tree_has_the_published_roots_and_node_hashes() {
    let (nodes, roots) = vector_tree();
    let expected: Vec<Hash256> = ROOTS.iter().map(|r| h(r)).collect();
    assert_eq!(roots, expected, "the frontier's roots, sizes 0..=8");
    for (level, row) in NODE_HASHES.iter().enumerate() {
        for (index, want) in row.iter().enumerate() {
            assert_eq!(
                nodes.node(level as u32, index as u64).expect("stored"),
                h(want),
                "node ({level}, {index})"
            );
        }
    }
    for (size, want) in ROOTS.iter().enumerate() {
        assert_eq!(root_at(&nodes, size as u64).expect("root"), h(want));
    }
    // The interior-node rule itself: level 1, index 0 from its two leaves.
    assert_eq!(
        node_hash(&h(NODE_HASHES[0][0]), &h(NODE_HASHES[0][1])),
        h(NODE_HASHES[1][0])
    );
}

#[test]
fn warden_produces_and_accepts_the_published_inclusion_proofs_and_rejects_each_bit_flip() {
    let (nodes, _) = vector_tree();
    for (leaf, size, path) in INCLUSION {
        let index = leaf - 1;
        let want: Vec<Hash256> = path.iter().map(|p| h(p)).collect();
        assert_eq!(
            prove_inclusion(&nodes, index, size).expect("proves"),
            want,
            "inclusion of leaf {index} in {size}"
        );
        let leaf_hash = rfc6962_leaf(LEAF_INPUTS[index as usize]);
        let root = h(ROOTS[size as usize]);
        verify_inclusion(&leaf_hash, index, size, &want, &root).expect("verifies");
        for i in 0..want.len() {
            for bit in 0..256 {
                let mut bad = want.clone();
                bad[i].0[bit / 8] ^= 1 << (bit % 8);
                assert!(verify_inclusion(&leaf_hash, index, size, &bad, &root).is_err());
            }
        }
        if size > 1 {
            assert!(verify_inclusion(&leaf_hash, index, size * 2, &want, &root).is_err());
        }
    }
}

#[test]
fn warden_produces_and_accepts_the_published_consistency_proofs_and_rejects_each_bit_flip() {
    let (nodes, _) = vector_tree();
    for (old, new, proof) in CONSISTENCY {
        let want: Vec<Hash256> = proof.iter().map(|p| h(p)).collect();
        assert_eq!(
            prove_consistency(&nodes, old, new).expect("proves"),
            want,
            "consistency {old} -> {new}"
        );
        let (r1, r2) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        verify_consistency(old, new, &r1, &r2, &want).expect("verifies");
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i].0[0] ^= 16;
            assert!(verify_consistency(old, new, &r1, &r2, &bad).is_err());
        }
        if !want.is_empty() {
            assert!(
                verify_consistency(old, new, &r2, &r1, &want).is_err(),
                "swapped roots"
            );
        }
    }
}

// --- C2SP signed-note (Go golang.org/x/mod/sumdb/note, note_test.go) ------

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

// --- C2SP signed-note specification example ------------------------------

const SPEC_VKEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// A verifier key `<name>+<hex id>+<base64(type ‖ key)>` split by hand.
fn parse_vkey(vkey: &str) -> (String, [u8; 4], VerifyingKey) {
    let mut parts = vkey.splitn(3, '+');
    let name = parts.next().expect("name").to_owned();
    let id: [u8; 4] = hex::decode(parts.next().expect("id"))
        .expect("hex")
        .try_into()
        .expect("4 bytes");
    let raw = Base64::decode_vec(parts.next().expect("key")).expect("base64");
    assert_eq!(raw[0], ED25519_TYPE, "{vkey} is an Ed25519 key");
    let key = VerifyingKey::from_bytes(&raw[1..].try_into().expect("32 bytes")).expect("key");
    (name, id, key)
}

/// Whether `note` carries a valid Ed25519 signature by (name, key), the
/// way warden checks its checkpoint notes: the line is found by name and
/// key id, the signature checked over the text.
fn signed_by(note: &SignedNote, name: &str, key: &VerifyingKey) -> bool {
    let id = note_key_id(name, ED25519_TYPE, key);
    note.signatures
        .iter()
        .filter(|s| s.name == name && s.key_id == id)
        .any(|s| {
            <[u8; 64]>::try_from(&s.signature[..]).is_ok_and(|b| {
                key.verify(note.text.as_bytes(), &Signature::from_bytes(&b))
                    .is_ok()
            })
        })
}

#[test]
fn warden_derives_the_key_ids_and_verifier_keys_of_go_sumdb_note_and_the_spec() {
    for vkey in [PETER_VKEY, ENOCH_VKEY, SPEC_VKEY] {
        let (name, id, key) = parse_vkey(vkey);
        assert_eq!(note_key_id(&name, ED25519_TYPE, &key), id, "{vkey}");
        assert_eq!(verifier_key(&name, ED25519_TYPE, &key), vkey);
    }
}

#[test]
fn warden_reproduces_go_sumdb_notes_signature_byte_for_byte() {
    // PRIVATE+KEY+<name>+<id>+<base64>; the base64 itself holds a '+'.
    let b64 = PETER_SKEY.splitn(5, '+').nth(4).expect("key");
    let raw = Base64::decode_vec(b64).expect("base64");
    assert_eq!(raw[0], ED25519_TYPE);
    let key = SigningKey::from_bytes(&raw[1..].try_into().expect("32-byte seed"));
    let (name, _, public) = parse_vkey(PETER_VKEY);
    assert_eq!(
        key.verifying_key(),
        public,
        "the signer key matches the verifier key"
    );
    let note = SignedNote {
        text: GO_TEXT.to_owned(),
        signatures: vec![NoteSignature {
            key_id: note_key_id(&name, ED25519_TYPE, &public),
            name,
            signature: key.sign(GO_TEXT.as_bytes()).to_bytes().to_vec(),
        }],
    };
    assert_eq!(note.to_text(), format!("{GO_TEXT}\n{PETER_SIG}"));
}

#[test]
fn warden_opens_the_go_and_spec_notes_and_refuses_them_altered() {
    let both = format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let note = SignedNote::parse(both.as_bytes()).expect("parses");
    assert_eq!(note.to_text(), both, "round trip");
    assert_eq!(note.text, GO_TEXT);
    for vkey in [PETER_VKEY, ENOCH_VKEY] {
        let (name, _, key) = parse_vkey(vkey);
        assert!(signed_by(&note, &name, &key), "{vkey}");
    }
    let spec = SignedNote::parse(SPEC_NOTE.as_bytes()).expect("parses");
    assert_eq!(spec.to_text(), SPEC_NOTE);
    let (name, _, key) = parse_vkey(SPEC_VKEY);
    assert!(signed_by(&spec, &name, &key));
    // One changed byte of the text, or of the signature, no longer verifies.
    let altered = SPEC_NOTE.replacen("example message", "example massage", 1);
    let altered = SignedNote::parse(altered.as_bytes()).expect("parses");
    assert!(!signed_by(&altered, &name, &key));
    let mut forged = spec.clone();
    forged.signatures[0].signature[10] ^= 1;
    assert!(!signed_by(&forged, &name, &key));
    // Go's malformed notes (note_test.go `badMsgs`) are refused.
    for bad in [
        GO_TEXT.to_owned(),
        format!("{GO_TEXT}\n"),
        format!("{GO_TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\u{1}{GO_TEXT}\n{PETER_SIG}"),
        format!("{GO_TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!(
            "{GO_TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
        ),
    ] {
        assert!(SignedNote::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
}

// --- C2SP tlog-witness and tlog-cosignature specification examples --------

const WITNESS_REQUEST: &str = "old 20852014\n\
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n\
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n\
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n\
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\
\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n";

const COSIGNED_CHECKPOINT: &str = "example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\
\n\
\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n\
\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

/// The spec's Ed25519 signed message for the checkpoint above at time
/// 1679315147.
const COSIGNED_MESSAGE: &str = "cosignature/v1\n\
time 1679315147\n\
example.com/behind-the-sofa\n\
20852163\n\
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

#[test]
fn the_tlog_witness_example_request_parses_and_prints_back_byte_for_byte() {
    let req = AddCheckpoint::parse(WITNESS_REQUEST.as_bytes()).expect("parses");
    assert_eq!(req.old_size, 20_852_014);
    assert_eq!(req.proof.len(), 4);
    let note = SignedNote::parse(req.checkpoint.as_bytes()).expect("a signed note");
    let head = super::note::TreeHead::parse_body(&note.text).expect("a checkpoint");
    assert_eq!(
        (head.origin.as_str(), head.size),
        ("example.com/behind-the-sofa", 20_852_163)
    );
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(req.to_text(), WITNESS_REQUEST);
}

#[test]
fn warden_cosigns_exactly_the_message_the_tlog_cosignature_spec_shows() {
    let note = SignedNote::parse(COSIGNED_CHECKPOINT.as_bytes()).expect("parses");
    assert_eq!(note.to_text(), COSIGNED_CHECKPOINT, "round trip");
    // The spec's cosignature carries the timestamp of its message example.
    let w = &note.signatures[1];
    assert_eq!(w.signature.len(), 8 + 64, "timestamp ‖ Ed25519 signature");
    let ts = u64::from_be_bytes(w.signature[..8].try_into().expect("8 bytes"));
    assert_eq!(ts, 1_679_315_147);
    // warden's cosignature at that time signs the spec's message, byte for byte.
    let key = SigningKey::from_bytes(&[7; 32]);
    let line = cosign(&note.text, "witness.example.com/w1", &key, ts).expect("cosigns");
    assert_eq!(&line.signature[..8], &w.signature[..8]);
    let sig = Signature::from_bytes(&line.signature[8..].try_into().expect("64 bytes"));
    key.verifying_key()
        .verify(COSIGNED_MESSAGE.as_bytes(), &sig)
        .expect("the spec's signed message");
    assert_eq!(
        line.key_id,
        note_key_id(
            "witness.example.com/w1",
            COSIGNATURE_TYPE,
            &key.verifying_key()
        )
    );
}
