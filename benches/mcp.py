#!/usr/bin/env python3
"""MCP benchmark (BENCHMARKS.md section 9): a `tools/call` of echo over
streamable HTTP against the same request over `POST /v1/requests`, on one
machine, alternately (stdio is not measured here).

    benches/mcp.sh                  # builds target/release/warden, writes a deployment, runs this

Standard library only (the load generator is the same for both sides, so
the ratios compare the servers, not the clients). Usage:

    benches/mcp.py <warden-bin> <config> <token> <host:port>

Measures, in ROUNDS alternating rounds (default 3) and reports medians:
  - latency p50/p99 at c=1 (N sequential requests, default 2000),
  - throughput at c=16 (16 threads, keep-alive connections, DURATION s),
Figures are measured, never fixed; nothing here asserts timing.
"""

import http.client
import json
import os
import statistics
import sys
import threading
import time

ROUNDS = int(os.environ.get("ROUNDS", "3"))
N = int(os.environ.get("N", "2000"))
DURATION = float(os.environ.get("DURATION", "5"))
CONC = int(os.environ.get("CONC", "16"))


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Http:
    """One keep-alive connection posting to the daemon."""

    def __init__(self, addr, token):
        host, port = addr.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port))
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream",
                        "MCP-Protocol-Version": "2026-07-28"}
        self.n = 0

    def post(self, path, body, extra=None):
        self.conn.request("POST", path, body=json.dumps(body), headers={**self.headers, **(extra or {})})
        r = self.conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data[:300]!r}")
        return data

    def rest(self):
        return self.post("/v1/requests", {"kind": "greet", "input": {"message": "hi"}})

    def mcp(self):
        self.n += 1
        return self.post("/mcp", tools_call(self.n), {"Mcp-Method": "tools/call", "Mcp-Name": "greet"})


def tools_call(n):
    return {"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "greet", "arguments": {"message": "hi"},
                       "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientCapabilities": {},
                                 "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"}}}}


def latencies(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    out.sort()
    return out


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e6


def throughput(addr, token, which):
    stop = time.perf_counter() + DURATION
    counts = [0] * CONC

    def worker(i):
        c = Http(addr, token)
        fn = c.rest if which == "rest" else c.mcp
        while time.perf_counter() < stop:
            fn()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONC)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts) / (time.perf_counter() - t)


def main():
    bin_, config, token, addr = sys.argv[1:5]
    c = Http(addr, token)
    for _ in range(200):  # warm-up: compiled code, pools, connections
        c.rest()
        c.mcp()
    rows = {"rest_p50": [], "mcp_p50": [], "rest_p99": [], "mcp_p99": [],
            "rest_rps": [], "mcp_rps": []}
    for r in range(ROUNDS):
        a, b = latencies(c.rest, N), latencies(c.mcp, N)
        rows["rest_p50"].append(pct(a, 0.5))
        rows["rest_p99"].append(pct(a, 0.99))
        rows["mcp_p50"].append(pct(b, 0.5))
        rows["mcp_p99"].append(pct(b, 0.99))
        rows["rest_rps"].append(throughput(addr, token, "rest"))
        rows["mcp_rps"].append(throughput(addr, token, "mcp"))
        print(f"round {r + 1}: load {load()}", file=sys.stderr)
    m = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"HTTP c=1  p50: POST /v1/requests {m['rest_p50']:.0f} us, /mcp tools/call {m['mcp_p50']:.0f} us "
          f"(x{m['mcp_p50'] / m['rest_p50']:.2f}); p99 {m['rest_p99']:.0f} / {m['mcp_p99']:.0f} us")
    print(f"HTTP c={CONC} throughput: POST /v1/requests {m['rest_rps']:.0f} req/s, /mcp {m['mcp_rps']:.0f} req/s "
          f"(x{m['rest_rps'] / m['mcp_rps']:.2f} cost)")
    print(f"load {load()}")
    return m


if __name__ == "__main__":
    main()
