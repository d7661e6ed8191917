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
                                                             "bad_deploy_errors", "--seed", "1", "--horizon", "40m",
                                                             "--difficulty", "easy"])   # the example as published


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
    assert set(tools) == set(ACTIONS) | {"score", "new_incident"}       # the next incident: on by default
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


# ---- structured score, annotations, resources, the next incident ----------------------------------------------------
NEXT_SERVER = SERVER          # the CLI offers `new_incident` by default


def over_mcp(params: StdioServerParameters, script) -> dict:
    """Run `script(session, seen)` against a server launched from `params`; what it saw."""
    seen: dict = {}

    async def main() -> None:
        with anyio.fail_after(180):      # a server that hangs fails the test instead of the run
            async with stdio_client(params) as (read, write):
                async with ClientSession(read, write) as session:
                    seen["init"] = await session.initialize()
                    await script(session, seen)

    anyio.run(main)
    return seen


def test_the_score_comes_structured():
    from opsworld.score.report import ScoreReport

    async def script(session, seen) -> None:
        seen["tools"] = {t.name: t for t in (await session.list_tools()).tools}
        seen["early_score"] = await session.call_tool("score", {})
        seen["bad_submit"] = await session.call_tool("submit", {"components": ["paymentservice"],
                                                                "fault_class": "not_a_class"})
        seen["query"] = await session.call_tool("list_changes", {})
        seen["rollback"] = await session.call_tool("rollback_deploy", {"service": "paymentservice"})
        seen["submit"] = await session.call_tool("submit", {"components": ["paymentservice"],
                                                            "fault_class": "error_rate"})
        seen["score"] = await session.call_tool("score", {})

    seen = over_mcp(SERVER, script)
    tools = seen["tools"]
    schema = ScoreReport.model_json_schema(mode="serialization")
    assert tools["score"].output_schema == schema and tools["submit"].output_schema == schema
    assert tools["query_metrics"].output_schema is None           # plain text tools declare none
    assert seen["early_score"].is_error and seen["early_score"].structured_content is None
    assert seen["bad_submit"].is_error and seen["bad_submit"].structured_content is None
    assert seen["query"].structured_content is None
    submitted, score = seen["submit"], seen["score"]
    assert not submitted.is_error and not score.is_error
    assert "Reward:" in text(submitted) and text(score).startswith("The episode is over. Reward: ")   # text stays
    assert submitted.structured_content == score.structured_content
    report = ScoreReport.model_validate(score.structured_content)
    assert set(score.structured_content) == set(ScoreReport.model_fields)
    assert report.model_dump(mode="json") == score.structured_content
    assert f"Reward: {report.reward:.2f} points" in text(score)
    assert report.submitted and report.root_cause_correct and report.roots == ["paymentservice"]
    assert report.diagnosis["components"] == ["paymentservice"] and report.diagnosis["fault_class"] == "error_rate"


def test_tools_carry_the_runbooks_annotations():
    async def script(session, seen) -> None:
        seen["tools"] = {t.name: t for t in (await session.list_tools()).tools}

    tools = over_mcp(SERVER, script)["tools"]
    kinds = {name: action.kind for name, action in ACTIONS.items()}
    assert {"investigate", "mitigate", "coordinate", "finish"} == set(kinds.values())
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None, name
        assert hints.open_world_hint is False, name                 # a closed, simulated world
        kind = kinds.get(name)
        if kind == "investigate" or name == "score":
            assert hints.read_only_hint is True and hints.idempotent_hint is True, name
            assert hints.destructive_hint is False, name
        elif kind == "mitigate":
            assert hints.read_only_hint is False and hints.destructive_hint is True, name
        elif kind == "coordinate":
            assert hints.read_only_hint is False and hints.destructive_hint is False, name
        elif name == "new_incident":       # the finished episode's score can no longer be read
            assert hints.read_only_hint is False and hints.destructive_hint is True
        else:
            assert name == "submit" and kind == "finish"
            assert hints.read_only_hint is False and hints.destructive_hint is True
            assert hints.idempotent_hint is False
    assert tools["silence_alert"].annotations.destructive_hint is False
    assert tools["acknowledge"].annotations.destructive_hint is False
    assert tools["rollback_deploy"].annotations.destructive_hint is True
    assert tools["read_logs"].annotations.read_only_hint is True


def test_resources_service_map_runbook_and_rules():
    import yaml
    from mcp.shared.exceptions import MCPError
    from opsworld.observe.alerts.rules import load_rules, rules_for

    async def script(session, seen) -> None:
        seen["tools"] = (await session.list_tools()).tools
        seen["resources"] = {r.uri: r for r in (await session.list_resources()).resources}
        seen["read"] = {uri: (await session.read_resource(uri)).contents for uri in seen["resources"]}
        seen["map_tool"] = await session.call_tool("get_service_map", {})
        try:
            await session.read_resource("opsworld://no-such-thing")
        except MCPError as exc:
            seen["unknown"] = exc

    seen = over_mcp(SERVER, script)
    resources = seen["resources"]
    assert set(resources) == {"opsworld://service-map", "opsworld://runbook", "opsworld://alert-rules"}
    assert resources["opsworld://alert-rules"].mime_type == "application/yaml"
    read = {uri: contents[0] for uri, contents in seen["read"].items()}
    assert all(len(contents) == 1 for contents in seen["read"].values())
    assert read["opsworld://service-map"].text == text(seen["map_tool"])       # the map the tool prints
    assert "paymentservice" in read["opsworld://service-map"].text
    runbook = read["opsworld://runbook"].text
    for tool in seen["tools"]:              # each action with its description (and its cost) as the tools have it
        if tool.name in ACTIONS:
            assert f"{tool.name}: {tool.description}\n" in runbook
    assert "Takes about 1m of your time" in runbook and "promql (string, required)" in runbook
    rules = read["opsworld://alert-rules"]
    assert rules.mime_type == "application/yaml"
    assert load_rules(yaml.safe_load(rules.text)).groups == rules_for("online-shop").groups
    assert "unknown resource" in str(seen["unknown"]).lower()


def test_a_scenario_of_ones_own_serves_its_generated_rules(tmp_path):
    import yaml
    from opsworld.spec.loader import template_path

    # the online shop under a name of its own: no built-in rule set comes with it, so rules are generated from it
    own = tmp_path / "my-shop.yaml"
    own.write_text(template_path("online-shop").read_text().replace("name: online-shop", "name: my-shop", 1))
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "opsworld.cli", "mcp", "--scenario", str(own), "--fault", "bad_deploy_errors", "--seed", "1",
        "--horizon", "10m"])

    async def script(session, seen) -> None:
        seen["rules"] = (await session.read_resource("opsworld://alert-rules")).contents[0].text

    rules = yaml.safe_load(over_mcp(params, script)["rules"])
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"ErrorBudgetBurnFast", "ServiceErrorRatioHigh"} <= names


def test_the_next_incident_in_the_same_process():
    from opsworld.score.report import ScoreReport

    async def script(session, seen) -> None:
        seen["tools"] = {t.name: t for t in (await session.list_tools()).tools}
        seen["prompts"] = (await session.list_prompts()).prompts
        seen["prompt"] = await session.get_prompt("on_call")
        seen["too_early"] = await session.call_tool("new_incident", {})
        await session.call_tool("list_changes", {})
        await session.call_tool("rollback_deploy", {"service": "paymentservice"})
        seen["submit1"] = await session.call_tool("submit", {"components": ["paymentservice"],
                                                             "fault_class": "error_rate"})
        seen["score1"] = await session.call_tool("score", {})
        seen["bad_fault"] = await session.call_tool("new_incident", {"fault": "no_such_fault"})
        seen["still_old"] = await session.call_tool("score", {})
        seen["new"] = await session.call_tool("new_incident", {"seed": 2, "fault": "bad_deploy_latency"})
        seen["early2"] = await session.call_tool("score", {})
        seen["prompt2"] = await session.get_prompt("on_call")
        seen["alerts2"] = await session.call_tool("list_alerts", {})
        seen["submit2"] = await session.call_tool("submit", {"components": ["productcatalogservice"],
                                                             "fault_class": "slowdown"})
        seen["score2"] = await session.call_tool("score", {})
        seen["after2"] = await session.call_tool("list_alerts", {})

    seen = over_mcp(NEXT_SERVER, script)
    tools = seen["tools"]
    assert set(tools) == set(ACTIONS) | {"score", "new_incident"}
    assert tools["new_incident"].annotations.destructive_hint is True
    # the prompt is the opening the server gives at start: the briefing and what paged
    assert [p.name for p in seen["prompts"]] == ["on_call"]
    opening = text_of_prompt(seen["prompt"])
    assert opening == seen["init"].instructions and "You have been paged" in opening and "new_incident" in opening
    assert seen["too_early"].is_error and "still running" in text(seen["too_early"])
    old = ScoreReport.model_validate(seen["score1"].structured_content)
    assert old.submitted and old.diagnosis["components"] == ["paymentservice"]
    # a bad request leaves the finished episode as it was
    assert seen["bad_fault"].is_error and "no_such_fault" in text(seen["bad_fault"])
    assert seen["still_old"].structured_content == seen["score1"].structured_content
    # the next incident: its own opening, a running episode whose calls work
    new = seen["new"]
    assert not new.is_error and "on-call engineer" in text(new) and "It is " in text(new)
    assert text_of_prompt(seen["prompt2"]) == text(new) != opening
    assert seen["early2"].is_error and "no score yet" in text(seen["early2"])
    assert not seen["alerts2"].is_error and text(seen["alerts2"]).startswith("Alerts at ")
    assert not seen["submit2"].is_error and "Reward:" in text(seen["submit2"])
    assert seen["after2"].is_error and "episode is over" in text(seen["after2"])
    # its score is its own: nothing of the first episode's diagnosis, actions or fault in it
    second = ScoreReport.model_validate(seen["score2"].structured_content)
    assert seen["submit2"].structured_content == seen["score2"].structured_content
    assert second.diagnosis["components"] == ["productcatalogservice"] and second.diagnosis["fault_class"] == "slowdown"
    assert old.fault == "error_rate" and second.fault == "slowdown"      # the fault asked for (its target drawn)
    assert old.actions == 3 and second.actions == 2 and second.submitted
    assert seen["score2"].structured_content != seen["score1"].structured_content


def text_of_prompt(result) -> str:
    return "\n".join(m.content.text for m in result.messages if m.content.type == "text")
