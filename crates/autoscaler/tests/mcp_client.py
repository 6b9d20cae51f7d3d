"""A thin driver of the official MCP Python SDK (package `mcp`) for tests/mcp.rs.

It connects to the autoscaler's MCP server over stdio or streamable HTTP, lists the tools,
makes the calls the plan asks for, and prints everything it saw as one JSON object on stdout.
It asserts nothing: the Rust test owns the scenario and the checks.

Usage: python mcp_client.py PLAN_JSON, where the plan is
  {"transport": "stdio", "command": "/path/autoscaler", "args": ["mcp", "--url", "..."],
   "calls": [{"tool": "autoscaler_get_status", "args": {}}, ...]}
or
  {"transport": "http", "url": "http://127.0.0.1:PORT/mcp", "token": "T" or null, "calls": [...]}
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client


def server_of(plan):
    if plan["transport"] == "stdio":
        return StdioServerParameters(command=plan["command"], args=plan["args"], env=plan.get("env"))
    headers = {}
    if plan.get("token"):
        headers["Authorization"] = "Bearer " + plan["token"]
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0))
    return streamable_http_client(plan["url"], http_client=http)


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")


async def run(plan):
    out = {}
    async with Client(server_of(plan), read_timeout_seconds=30) as client:
        info = client.server_info
        out["protocol_version"] = client.protocol_version
        out["server_info"] = info.model_dump(mode="json", exclude_none=True) if info else None
        out["instructions"] = client.instructions
        listed = await client.list_tools()
        out["tools"] = [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]
        out["calls"] = []
        for call in plan.get("calls", []):
            result = await client.call_tool(call["tool"], call.get("args", {}))
            out["calls"].append(
                {
                    "tool": call["tool"],
                    "args": call.get("args", {}),
                    "is_error": bool(result.is_error),
                    "structured": result.structured_content,
                    "text": text_of(result),
                }
            )
    return out


def main():
    plan = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(plan))))


if __name__ == "__main__":
    main()
