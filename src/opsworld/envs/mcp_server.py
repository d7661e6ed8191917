"""`opsworld mcp`: one incident served as an MCP server over stdio, built with the official `mcp` SDK (2.x).

Every runbook action is an MCP tool with its JSON schema, answering with the text a real tool prints (see
`opsworld.envs.tools.ToolSession`); a refused or failed call comes back with `isError` set and costs its time like any
other. Each tool carries MCP annotations read off the runbook's kind of action (investigations read only, mitigations
destructive; a closed, simulated world). One more tool, `score`, returns the score report once the agent has
submitted (or the shift has ended), and an error text before; it and `submit` also return the report as
`structuredContent` under a declared output schema (`ScoreReport`'s). The server's instructions brief the agent and
say what paged them; the prompt `on_call` gives the same text as a first message.

Resources: the service map, the runbook (every action with what it does and costs) and the alerting rules in force,
as a Prometheus rule file.

One process, one episode by default: the session is made when the server starts, so an MCP client that launches the
command gets a fresh incident each time (`--seed` and `--fault` pick it). With `next_incident`, a `new_incident` tool
starts the next incident on the same scenario once the current one is over, in the same process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import mcp.types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from opsworld.act.runbook import ACTIONS
from opsworld.envs.text import render_service_map
from opsworld.envs.tools import ToolSession, score_text
from opsworld.observe.alerts.generate import rules_yaml as rule_file_yaml
from opsworld.observe.alerts.rules import RuleFile
from opsworld.score.report import ScoreReport
from opsworld.spec import Scenario

SCORE_TOOL = "score"
NEW_INCIDENT_TOOL = "new_incident"
ON_CALL_PROMPT = "on_call"
BRIEFING = ("You are the on-call engineer. Investigate with the tools (each costs time: the system keeps running "
            "while you work), mitigate what hurts users, then call `submit` with the root-cause component(s) and "
            "the failure mode. Tool results read like the real tools' output. Call `score` after submitting.")
NEXT_BRIEFING = f" After the score, `{NEW_INCIDENT_TOOL}` starts the next incident."
SERVICE_MAP_URI, RUNBOOK_URI, RULES_URI = "opsworld://service-map", "opsworld://runbook", "opsworld://alert-rules"
NO_RULES = ("# No alerting rules are in force for this system (a scenario of its own brings none of the built-in\n"
            "# rule sets): no alert fires and nothing pages; watch the metrics instead.\ngroups: []\n")
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
# the report as `model_dump(mode="json")` writes it: what `structuredContent` holds
SCORE_SCHEMA: dict[str, Any] = ScoreReport.model_json_schema(mode="serialization")


def _hints(read_only: bool, destructive: bool, idempotent: bool) -> types.ToolAnnotations:
    # openWorldHint false throughout: every tool acts on the simulated world only, never on anything outside it
    return types.ToolAnnotations(read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent,
                                 open_world_hint=False)


# MCP's hints by the runbook's kind of action: investigations only read; mitigations change the running system;
# coordination (page, silence, acknowledge, wait) changes no component; `submit` ends the episode for good
KIND_HINTS: dict[str, types.ToolAnnotations] = {
    "investigate": _hints(read_only=True, destructive=False, idempotent=True),
    "mitigate": _hints(read_only=False, destructive=True, idempotent=False),
    "coordinate": _hints(read_only=False, destructive=False, idempotent=False),
    "finish": _hints(read_only=False, destructive=True, idempotent=False),
}


class _Desk:
    """The episode being served (replaced by `new_incident`) and how to start the next one."""

    def __init__(self, session: ToolSession, scenario: str | Path | Scenario | None, briefing: str) -> None:
        # a scenario name or file reloads with the next fault's own changes; else the session's loaded scenario
        self.scenario: str | Path | Scenario = scenario if scenario is not None else session.scenario
        self.briefing = briefing
        self.lock = threading.Lock()          # one call at a time: the world advances between calls
        self.start(session)

    def start(self, session: ToolSession) -> None:
        """Serve `session`; its opening text is taken now, when the responder is paged (later the clock moves)."""
        self.session = session
        self.opening = self.briefing + "\n\n" + session.pages_text()

    def new_incident(self, args: dict[str, Any]) -> tuple[str, bool]:
        """A fresh session on the same scenario and horizon: the previous seed + 1 and the faults the server was
        started with, unless `seed` or `fault` is given."""
        old = self.session
        if not old.done:
            return (f"{NEW_INCIDENT_TOOL}: the current incident is still running; submit your diagnosis first "
                    "(its score would be lost)"), True
        extra = set(args) - {"seed", "fault"}
        seed, fault = args.get("seed", old.inc.seed + 1), args.get("fault", _faults_of(old))
        if extra:
            return f"{NEW_INCIDENT_TOOL}: unknown argument(s) {', '.join(sorted(extra))}; it takes seed and fault", True
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            return f"{NEW_INCIDENT_TOOL}: argument 'seed' must be a whole number >= 0; got {seed!r}", True
        if "fault" in args and not isinstance(fault, str):
            return f"{NEW_INCIDENT_TOOL}: argument 'fault' must be a catalogue entry's name; got {fault!r}", True
        source: Any = self.scenario          # ToolSession takes a loaded Scenario as well as a name or file
        try:
            session = ToolSession(source, seed=seed, fault=fault, horizon=old.inc.config.horizon,
                                  difficulty=old.difficulty)
        except ValueError as exc:       # an unknown fault, or one the scenario cannot host (FaultError, ScenarioError)
            return f"{NEW_INCIDENT_TOOL}: {str(exc).splitlines()[0]}", True
        self.start(session)
        return self.opening, False


def _faults_of(session: ToolSession) -> str | list[str] | None:
    """The catalogue entries `session` drew its fault from (None: any that can strike the scenario)."""
    entries = session.inc.config.generator.entries
    if not entries:
        return None
    return entries[0] if len(entries) == 1 else list(entries)


def make_server(session: ToolSession, *, next_incident: bool = False,
                scenario: str | Path | Scenario | None = None) -> Server:
    """An MCP server whose tools drive `session` (one episode). With `next_incident`, a `new_incident` tool starts
    the next one on `scenario` (default: the session's) once it is over."""
    desk = _Desk(session, scenario, BRIEFING + (NEXT_BRIEFING if next_incident else ""))
    tools = [types.Tool(name=t["name"], description=t["description"], input_schema=t["input_schema"],
                        annotations=KIND_HINTS[ACTIONS[t["name"]].kind],
                        output_schema=SCORE_SCHEMA if t["name"] == "submit" else None)
             for t in session.tools()]
    tools.append(types.Tool(name=SCORE_TOOL, description="The episode's score report, once you have submitted or "
                            "the shift has ended (an error before). Costs no time.",
                            input_schema=_EMPTY_SCHEMA, output_schema=SCORE_SCHEMA,
                            annotations=_hints(read_only=True, destructive=False, idempotent=True)))
    if next_incident:
        tools.append(types.Tool(
            name=NEW_INCIDENT_TOOL,
            description="Start the next incident on the same system, once this one is over (after `submit` and "
                        "`score`; an error before). Answers with what paged you. The finished episode's score can "
                        "no longer be read afterwards.",
            input_schema={"type": "object", "properties": {
                "seed": {"type": "integer", "minimum": 0,
                         "description": "which incident (default: the previous seed + 1)"},
                "fault": {"type": "string", "description": "a catalogue entry, NAME or NAME:TARGET (default: as the "
                                                           "server was started: the same fault(s), or drawn from "
                                                           "the seed among those that can strike this system)"}},
                "additionalProperties": False},
            # it discards the finished episode (its score goes); each call draws a new incident
            annotations=_hints(read_only=False, destructive=True, idempotent=False)))
    resources = [
        types.Resource(uri=SERVICE_MAP_URI, name="service-map", title="Service map", mime_type="text/plain",
                       description="The documented service map: components, their calls and where they run."),
        types.Resource(uri=RUNBOOK_URI, name="runbook", title="Runbook", mime_type="text/plain",
                       description="Every runbook action (each a tool): what it does, its arguments and the time "
                                   "it costs you."),
        types.Resource(uri=RULES_URI, name="alert-rules", title="Alerting rules", mime_type="application/yaml",
                       description="The alerting rules in force, as a Prometheus rule file (what can page you)."),
    ]
    prompt = types.Prompt(name=ON_CALL_PROMPT, title="On call",
                          description="The briefing and what paged you: the first message for an agent on this "
                                      "incident.")

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    def run(name: str, args: dict[str, Any] | None) -> tuple[str, bool, ScoreReport | None]:
        """The call's text, whether it failed, and the final report when the answer is one."""
        with desk.lock:
            current = desk.session
            if name == SCORE_TOOL:
                if not current.done:
                    return "no score yet: the episode is still running; submit your diagnosis first", True, None
                report = current.report()
                return score_text(report), False, report
            if name == NEW_INCIDENT_TOOL and next_incident:
                text, error = desk.new_incident(args or {})
                return text, error, None
            result = current.call(name, args)
            # a submit that went through ended the episode: its text is the score report
            final = name == "submit" and not result.error
            return result.text, result.error, current.report() if final else None

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        # the engine is CPU-bound numpy: run it off the event loop so the transport keeps answering pings
        text, error, report = await anyio.to_thread.run_sync(run, params.name, params.arguments)
        structured = report.model_dump(mode="json") if report is not None else None
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=error,
                                    structured_content=structured)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=resources)

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        current = desk.session       # static documents of the scenario: no need to wait for a running call
        if params.uri == SERVICE_MAP_URI:
            text = render_service_map(current.scenario)
        elif params.uri == RUNBOOK_URI:
            text = runbook_text(current)
        elif params.uri == RULES_URI:
            text = rules_yaml(current.inc.telemetry.rules)
        else:
            raise MCPError(types.INVALID_PARAMS, f"Unknown resource: {params.uri}")
        kind = next(r.mime_type for r in resources if r.uri == params.uri)
        return types.ReadResourceResult(contents=[types.TextResourceContents(uri=params.uri, mime_type=kind,
                                                                             text=text)])

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[prompt])

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        if params.name != ON_CALL_PROMPT:
            raise MCPError(types.INVALID_PARAMS, f"Unknown prompt: {params.name}")
        return types.GetPromptResult(description=prompt.description, messages=[
            types.PromptMessage(role="user", content=types.TextContent(type="text", text=desk.opening))])

    return Server("opsworld", version=_version(), instructions=desk.opening,
                  on_list_tools=list_tools, on_call_tool=call_tool, on_list_resources=list_resources,
                  on_read_resource=read_resource, on_list_prompts=list_prompts, on_get_prompt=get_prompt)


def runbook_text(session: ToolSession) -> str:
    """The runbook as one document: each action's description (as its tool has it) and its arguments."""
    lines = ["Runbook: every action you can take, as a tool. Each costs your time: the system keeps running.", ""]
    for tool in session.tools():
        lines.append(f"{tool['name']}: {tool['description']}")
        schema = tool["input_schema"]
        required = set(schema.get("required", ()))
        for arg, spec in schema["properties"].items():
            need = "required" if arg in required else "optional"
            lines.append(f"    {arg} ({spec['type']}, {need}): {spec.get('description', '')}")
        lines.append("")
    return "\n".join(lines)


def rules_yaml(rules: RuleFile | None) -> str:
    """The alerting rules in force as a Prometheus rule file, or a YAML file saying there are none."""
    if rules is None:
        return NO_RULES
    return f"# The alerting rules in force (from {rules.source}).\n" + rule_file_yaml(rules)


def serve_mcp(scenario: str | None = None, seed: int = 0, fault: str | None = None,
              horizon: float | None = None, session: ToolSession | None = None, *,
              next_incident: bool = False, difficulty: str = "easy") -> None:
    """Start one episode (or serve `session`, made already) over stdio until the client closes the connection.
    `scenario` (default online-shop, or `session`'s) is also where `new_incident` starts the next ones, at the
    session's difficulty."""
    session = session or ToolSession(scenario or "online-shop", seed=seed, fault=fault, horizon=horizon,
                                     difficulty=difficulty)
    server = make_server(session, next_incident=next_incident, scenario=scenario)

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
