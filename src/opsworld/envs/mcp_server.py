"""`opsworld mcp`: one incident served as an MCP server over stdio, built with the official `mcp` SDK (2.x).

Every runbook action is an MCP tool with its JSON schema, answering with the text a real tool prints (see
`opsworld.envs.tools.ToolSession`); a refused or failed call comes back with `isError` set and costs its time like any
other. One more tool, `score`, returns the score report once the agent has submitted (or the shift has ended), and
an error text before. The server's instructions brief the agent and say what paged them.

One process, one episode: the session is made when the server starts, so an MCP client that launches the command
gets a fresh incident each time (`--seed` and `--fault` pick it).
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

from opsworld.envs.tools import ToolSession, score_text

SCORE_TOOL = "score"
BRIEFING = ("You are the on-call engineer. Investigate with the tools (each costs time: the system keeps running "
            "while you work), mitigate what hurts users, then call `submit` with the root-cause component(s) and "
            "the failure mode. Tool results read like the real tools' output. Call `score` after submitting.")


def make_server(session: ToolSession) -> Server:
    """An MCP server whose tools drive `session` (one episode)."""
    lock = threading.Lock()          # one call at a time: the world advances between calls
    tools = [types.Tool(name=t["name"], description=t["description"], input_schema=t["input_schema"])
             for t in session.tools()]
    tools.append(types.Tool(name=SCORE_TOOL, description="The episode's score report, once you have submitted or "
                            "the shift has ended (an error before). Costs no time.",
                            input_schema={"type": "object", "properties": {}, "additionalProperties": False}))

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    def run(name: str, args: dict[str, Any] | None) -> tuple[str, bool]:
        with lock:
            if name == SCORE_TOOL:
                if not session.done:
                    return "no score yet: the episode is still running; submit your diagnosis first", True
                return score_text(session.report()), False
            result = session.call(name, args)
            return result.text, result.error

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        # the engine is CPU-bound numpy: run it off the event loop so the transport keeps answering pings
        text, error = await anyio.to_thread.run_sync(run, params.name, params.arguments)
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error)

    return Server("opsworld", version=_version(), instructions=BRIEFING + "\n\n" + session.pages_text(),
                  on_list_tools=list_tools, on_call_tool=call_tool)


def serve_mcp(scenario: str = "online-shop", seed: int = 0, fault: str | None = None,
              horizon: float | None = None, session: ToolSession | None = None) -> None:
    """Start one episode (or serve `session`, made already) over stdio until the client closes the connection."""
    session = session or ToolSession(scenario, seed=seed, fault=fault, horizon=horizon)
    server = make_server(session)

    async def main() -> None:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())

    anyio.run(main)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("opsworld")
    except PackageNotFoundError:
        return "0"
