"""A scripted MCP client session against warden, on the official Python SDK.

Run by tests/e2e/mcp.rs (and the quickstart demo) with the venv that
tests/mcp/setup.sh installs:

    target/mcp-client/venv/bin/python tests/mcp/client.py session|connect

Everything it needs comes from the environment:

    MCP_TRANSPORT          http | stdio
    MCP_MODE               auto (2026-07-28, probed) | legacy (2025-11-25 handshake)
    MCP_URL, MCP_TOKEN     http: the /mcp endpoint and the bearer token
    MCP_ORIGIN             http: an Origin header to send (optional)
    WARDEN_BIN             the warden binary (stdio: started as `warden mcp`; both: approvals)
    WARDEN_CONFIG          stdio: the daemon config `warden mcp` reads
    MCP_READY_FILE         stdio: where `warden mcp` writes its HTTP API address
    WARDEN_URL             http: the daemon's API, for `warden approvals approve`
    WARDEN_APPROVER_TOKEN  a token with the approve role

`session` runs every step and prints one JSON document with what each step
returned; `connect` only connects and lists tools, printing the error it
got (for the refused-at-the-door cases). The assertions are the Rust test's.
"""

import asyncio
import importlib.metadata
import json
import os
import subprocess
import sys
import time
import traceback

import httpx2
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

CLIENT = Implementation(name="warden-e2e-client", version="1.2.3")


def dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def transport():
    kind = os.environ["MCP_TRANSPORT"]
    if kind == "http":
        headers = {"Authorization": f"Bearer {os.environ['MCP_TOKEN']}"}
        if os.environ.get("MCP_ORIGIN"):
            headers["Origin"] = os.environ["MCP_ORIGIN"]
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120.0))
        return streamable_http_client(os.environ["MCP_URL"], http_client=http)
    if kind == "stdio":
        return StdioServerParameters(
            command=os.environ["WARDEN_BIN"],
            args=["mcp", "--config", os.environ["WARDEN_CONFIG"],
                  "--ready-file", os.environ["MCP_READY_FILE"]],
            env={"WARDEN_LOG": "warn"},
        )
    raise SystemExit(f"unknown MCP_TRANSPORT {kind!r}")


def client():
    return Client(transport(), mode=os.environ.get("MCP_MODE", "auto"),
                  client_info=CLIENT, cache=None, read_timeout_seconds=120)


async def step(out, name, coro):
    """Runs one step; records its result, or the error it raised."""
    try:
        out[name] = await coro
    except MCPError as e:
        out[name] = {"mcp_error": {"code": e.error.code, "message": e.error.message,
                                   "data": e.error.data}}
    except Exception as e:  # noqa: BLE001 - the test asserts on what happened
        out[name] = {"exception": "".join(traceback.format_exception(e))}


async def call(c, name, args, meta=None):
    return dump(await c.call_tool(name, args, meta=meta))


async def list_tools(c):
    return dump(await c.list_tools())["tools"]


async def read(c, uri):
    r = await c.read_resource(uri)
    return json.loads(r.contents[0].text)


def api_url():
    if os.environ["MCP_TRANSPORT"] == "http":
        return os.environ["WARDEN_URL"]
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with open(os.environ["MCP_READY_FILE"]) as f:
                addr = f.read().strip()
            if addr:
                return f"http://{addr}"
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError("warden mcp wrote no ready file")


def approve(request_id):
    env = dict(os.environ, WARDEN_TOKEN=os.environ["WARDEN_APPROVER_TOKEN"])
    p = subprocess.run(
        [os.environ["WARDEN_BIN"], "approvals", "approve", request_id,
         "--reason", "mcp e2e: looks right", "--url", api_url()],
        capture_output=True, text=True, env=env, timeout=120)
    return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}


async def session():
    out = {}
    async with client() as c:
        out["protocol_version"] = c.protocol_version
        out["server_info"] = dump(c.server_info) if c.server_info else None
        await step(out, "tools", list_tools(c))
        await step(out, "good", call(c, "greet", {"message": "hi"}))
        await step(out, "idem1", call(c, "greet", {"message": "once"},
                                      {"dev.warden/idempotency-key": "k-1"}))
        await step(out, "idem2", call(c, "greet", {"message": "once"},
                                      {"dev.warden/idempotency-key": "k-1"}))
        await step(out, "bad", call(c, "greet", {"message": 5}))
        await step(out, "budget", call(c, "tight", {"message": "hi"}))
        await step(out, "unknown", call(c, "no_such_tool", {}))
        await step(out, "hidden", call(c, "secret", {"message": "hi"}))
        await step(out, "held", call(c, "pay", {"message": "pay 100"}))
        held = out["held"]
        request_id = (held.get("_meta") or {}).get("dev.warden/answer", {}).get("request_id")
        out["held_id"] = request_id
        if request_id:
            out["approve"] = approve(request_id)
            await step(out, "after", read(c, f"warden://requests/{request_id}?wait=60s"))
        resources = await c.list_resources()
        out["resources"] = [r["uri"] for r in dump(resources)["resources"]]
        templates = await c.list_resource_templates()
        out["templates"] = [t["uriTemplate"] for t in dump(templates)["resourceTemplates"]]
        await step(out, "manifest", read(c, "warden://tools/counter/permissions"))
        await step(out, "capabilities", read(c, "warden://capabilities"))
        await step(out, "hidden_manifest", read(c, "warden://tools/secret/permissions"))
    return out


async def connect():
    try:
        async with client() as c:
            tools = await c.list_tools()
            return {"connected": True, "tools": [t.name for t in tools.tools]}
    except BaseException as e:  # noqa: BLE001 - includes ExceptionGroup
        return {"connected": False, "error": "".join(traceback.format_exception(e))}


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else "session"
    result = asyncio.run(session() if what == "session" else connect())
    result["sdk_version"] = importlib.metadata.version("mcp")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
