"""`opsworld mcp` with the official SDK's own client over stdio: list the tools, investigate, mitigate, wait, submit,
read the score."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("mcp")

import anyio  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

from opsworld.act.runbook import ACTIONS  # noqa: E402

SERVER = StdioServerParameters(command=sys.executable, args=["-m", "opsworld.cli", "mcp", "--fault",
                                                             "bad_deploy_errors", "--seed", "1", "--horizon", "40m"])


def text(result) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


def test_an_incident_over_mcp():
    seen: dict = {}

    async def main() -> None:
        with anyio.fail_after(120):      # a server that hangs fails the test instead of the run
            await session_script()

    async def session_script() -> None:
        async with stdio_client(SERVER) as (read, write):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                seen["instructions"] = init.instructions
                tools = (await session.list_tools()).tools
                seen["tools"] = {t.name: t for t in tools}
                seen["early_score"] = await session.call_tool("score", {})
                seen["query"] = await session.call_tool(
                    "query_metrics", {"promql": 'sum by (service) (rate(http_server_requests_total{code=~"5.."}[5m]))'})
                seen["bad"] = await session.call_tool("query_metrics", {"promql": "sum(("})
                seen["changes"] = await session.call_tool("list_changes", {})
                seen["rollback"] = await session.call_tool("rollback_deploy", {"service": "paymentservice"})
                seen["wait"] = await session.call_tool("wait", {"duration": "10m"})
                seen["submit"] = await session.call_tool("submit", {"components": ["paymentservice"],
                                                                     "fault_class": "error_rate"})
                seen["score"] = await session.call_tool("score", {})
                seen["after"] = await session.call_tool("list_alerts", {})

    anyio.run(main)

    assert "You have been paged" in seen["instructions"] and "on-call engineer" in seen["instructions"]
    tools = seen["tools"]
    assert set(tools) == set(ACTIONS) | {"score"}
    assert tools["read_logs"].input_schema == ACTIONS["read_logs"].schema()
    assert "error_rate" in tools["submit"].description
    assert seen["early_score"].is_error and "no score yet" in text(seen["early_score"])
    assert not seen["query"].is_error and '{service="paymentservice"}' in text(seen["query"])
    assert seen["bad"].is_error and "parse error" in text(seen["bad"])
    assert "paymentservice" in text(seen["changes"]) and "deploy" in text(seen["changes"])
    assert not seen["rollback"].is_error and "rollback of paymentservice" in text(seen["rollback"])
    assert text(seen["wait"]).startswith("waited 10m")
    assert not seen["submit"].is_error and "Reward:" in text(seen["submit"])
    score = text(seen["score"])
    assert not seen["score"].is_error and score.startswith("The episode is over. Reward: ")
    assert "Mitigation: yes" in score and "Root cause analysis: yes" in score
    assert seen["after"].is_error and "episode is over" in text(seen["after"])
