#!/usr/bin/env python3
"""Loopback helpers for benches/http.sh (standard library only).

  loopback.py slow-server PORT DELAY_S
      An HTTP/1.1 server on 127.0.0.1:PORT answering every request after
      DELAY_S seconds with {"rate": 1.0}. Prints "ready" once listening and,
      on SIGTERM, the peak number of requests it held at once.

  loopback.py burst URL TOKEN N BODY_JSON TIMEOUT_S
      Sends N POST requests at once (N connections) with a bearer token and
      waits for every answer. Prints one JSON line: counts per status and
      the wall time. Only ever targets the URL given (loopback).
"""

import asyncio
import json
import signal
import sys
import time


async def slow_server(port: int, delay: float) -> None:
    held = 0
    peak = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal held, peak
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                held += 1
                peak = max(peak, held)
                try:
                    await asyncio.sleep(delay)
                finally:
                    held -= 1
                body = b'{"base":"EUR","quote":"USD","rate":1.0}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + b"content-length: %d\r\n\r\n" % len(body)
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    server.close()
    print(f"slow-server peak held requests: {peak}", flush=True)


async def one_post(host: str, port: int, path: str, token: str, body: bytes, timeout: float):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
            f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        rest = await asyncio.wait_for(reader.read(), timeout)
        outcome = None
        try:
            outcome = json.loads(rest).get("outcome")
        except ValueError:
            pass
        return status, outcome
    finally:
        writer.close()


async def burst(url: str, token: str, n: int, body: str, timeout: float) -> None:
    assert url.startswith("http://127.") or url.startswith("http://localhost"), "loopback only"
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.partition(":")
    started = time.monotonic()
    results = await asyncio.gather(
        *(one_post(host, int(port), "/" + path, token, body.encode(), timeout) for _ in range(n)),
        return_exceptions=True,
    )
    counts: dict = {}
    for r in results:
        key = f"error:{type(r).__name__}" if isinstance(r, BaseException) else f"{r[0]} {r[1]}"
        counts[key] = counts.get(key, 0) + 1
    print(json.dumps({"requests": n, "results": counts, "seconds": round(time.monotonic() - started, 3)}))


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "slow-server":
        asyncio.run(slow_server(int(sys.argv[2]), float(sys.argv[3])))
    elif cmd == "burst":
        url, token, n, body, timeout = sys.argv[2:7]
        asyncio.run(burst(url, token, int(n), body, float(timeout)))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
