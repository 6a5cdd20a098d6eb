#!/usr/bin/env python3
"""Interop check: verify warden's transparency-log output with an
independent implementation of the C2SP formats and RFC 9162 proofs
(the `aics-tlog` package from PyPI, Python >= 3.12; not used by CI).

    python3.12 -m venv /tmp/v && /tmp/v/bin/pip install aics-tlog
    /tmp/v/bin/python scripts/interop_tlog.py --pubkey DATA/host.pub \
        --inclusion p.tlog-proof --consistency c.proof \
        [--cosigned note --witness NAME=ed25519:<hex>]

    /tmp/v/bin/python scripts/interop_tlog.py --emit DIR
        # the other direction: aics-tlog builds a tree over 9 random 32-byte
        # entry hashes, signs a checkpoint and writes DIR/host.pub,
        # DIR/inclusion.tlog-proof (leaf 4) and DIR/consistency.proof (3 -> 9)
        # for `warden audit verify-proof`.

Exits 0 only if every given file verifies; prints one line per check.
"""

import argparse
import base64
import sys

from aics_tlog import (
    Checkpoint,
    MerkleTree,
    sign_checkpoint,
    cosignature_vkey,
    leaf_hash,
    parse_note,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    vkey_from_ed25519,
)


def ed25519(text: str) -> bytes:
    text = text.strip()
    assert text.startswith("ed25519:"), text
    return bytes.fromhex(text[len("ed25519:"):])


def split(text: str):
    head, note = text.split("\n\n", 1)
    return head.split("\n"), note


def checked_note(note_text: str, pub: bytes, witnesses=(), quorum=0):
    note = parse_note(note_text.encode())
    origin = note.text.split("\n", 1)[0]
    res = verify_checkpoint(
        note, vkey_from_ed25519(origin, pub), list(witnesses), quorum, expected_origin=origin
    )
    if not res.ok:
        raise SystemExit(f"FAILED: checkpoint: {res.error}")
    return res


def emit(out: str) -> int:
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes_raw()
    origin = "interop.example/aics-tlog"
    records = [os.urandom(32) for _ in range(9)]
    tree = MerkleTree(records)
    note = sign_checkpoint(Checkpoint(origin, 9, tree.root()), key, origin).serialise()
    b64 = lambda h: base64.b64encode(h).decode()
    os.makedirs(out, exist_ok=True)
    open(f"{out}/host.pub", "w").write("ed25519:" + pub.hex() + "\n")
    proof = "".join(b64(h) + "\n" for h in tree.inclusion_proof(4, 9))
    open(f"{out}/inclusion.tlog-proof", "w").write(
        f"c2sp.org/tlog-proof@v1\nextra {b64(records[4])}\nindex 4\n{proof}\n{note}"
    )
    proof = "".join(b64(h) + "\n" for h in tree.consistency_proof(3, 9))
    open(f"{out}/consistency.proof", "w").write(
        f"warden-consistency-proof-v1\nold 3\nold-root {b64(tree.root(3))}\n{proof}\n{note}"
    )
    print(f"wrote {out}/host.pub, inclusion.tlog-proof, consistency.proof (aics-tlog)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emit")
    ap.add_argument("--pubkey")
    ap.add_argument("--inclusion")
    ap.add_argument("--consistency")
    ap.add_argument("--cosigned")
    ap.add_argument("--witness", action="append", default=[])
    a = ap.parse_args()
    if a.emit:
        return emit(a.emit)
    pub = ed25519(open(a.pubkey).read())
    if a.inclusion:
        lines, note = split(open(a.inclusion).read())
        assert lines[0] == "c2sp.org/tlog-proof@v1", lines[0]
        entry_hash = base64.b64decode(lines[1].removeprefix("extra "), validate=True)
        index = int(lines[2].removeprefix("index "))
        proof = [base64.b64decode(l, validate=True) for l in lines[3:]]
        cp = checked_note(note, pub)
        if not verify_inclusion(leaf_hash(entry_hash), index, cp.size, proof, cp.root):
            print("FAILED: inclusion proof")
            return 1
        print(f"ok: inclusion of leaf {index} in {cp.origin} size {cp.size} (aics-tlog)")
    if a.consistency:
        lines, note = split(open(a.consistency).read())
        assert lines[0] == "warden-consistency-proof-v1", lines[0]
        old = int(lines[1].removeprefix("old "))
        old_root = base64.b64decode(lines[2].removeprefix("old-root "), validate=True)
        proof = [base64.b64decode(l, validate=True) for l in lines[3:]]
        cp = checked_note(note, pub)
        if not verify_consistency(old, cp.size, old_root, cp.root, proof):
            print("FAILED: consistency proof")
            return 1
        print(f"ok: size {cp.size} extends size {old} (aics-tlog)")
    if a.cosigned:
        keys = []
        for w in a.witness:
            name, key = w.split("=", 1)
            keys.append(cosignature_vkey(name, ed25519(key)))
        cp = checked_note(open(a.cosigned).read(), pub, keys, len(keys))
        print(f"ok: checkpoint size {cp.size} with {cp.cosignature_count} witness cosignature(s) (aics-tlog)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
