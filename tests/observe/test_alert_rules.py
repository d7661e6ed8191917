"""Alerting rule files: the built-in sets load, pass promtool and cover what an on-call team alerts on; bad files
give one-line errors naming the file and the field; durations and templates behave as Prometheus'."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from opsworld.observe.alerts import RuleError, load_rules, parse_duration, rules_for, templates
from opsworld.observe.alerts.rules import format_duration, rules_path
from opsworld.observe.alerts.templating import (TemplateError, compile_template, humanize, humanize1024,
                                                humanize_duration, humanize_percentage, humanize_timestamp, printf)
from opsworld.observe.alerts.wire import fingerprint, go_exp_float, go_float, rfc3339
from opsworld.observe.alerts.generate import rules_for_scenario
from opsworld.spec import load_scenario
from opsworld.spec import templates as scenario_templates

TEMPLATES = ["hotel-reservation", "llm-inference", "online-shop", "social-network"]

# the kinds of rule every set has, and the ones only some systems need
COMMON = {
    "ErrorBudgetBurnFast", "ErrorBudgetBurnSustained", "ErrorBudgetBurnSlow", "LatencyObjectiveBreached",
    "ServiceErrorRatioHigh", "DownstreamCallsFailing", "ServiceLatencyHigh", "ContainerCPUNearLimit",
    "ConnectionPoolRequestsWaiting", "ConnectionPoolNearlyExhausted", "CertificateExpiringSoon",
    "CertificateRenewalOverdue", "CertificateExpired", "ContainerFilesystemAlmostFull", "ContainerFilesystemFull",
    "ContainerMemoryNearLimit", "ContainerRestartBackOff", "PodRestartingFrequently", "ContainerOOMKilled", "PodNotReady",
    "DeploymentReplicasUnavailable", "DeploymentUnavailable", "KubeNodeNotReady", "TargetDown",
}
EXTRA = {
    "online-shop": set(),
    "hotel-reservation": {"CacheHitRatioLow"},
    "social-network": {"CacheHitRatioLow", "ConsumerLagHigh", "ConsumerLagCritical"},
    "llm-inference": {"ConsumerLagHigh", "GPUXidEvent", "GPUFatalXidError"},
}
FORBIDDEN = re.compile(r"fault|inject|chaos|scenario|experiment|" + "|".join(TEMPLATES), re.IGNORECASE)


# ---- the built-in sets -----------------------------------------------------------------------------------------------
def test_every_template_has_a_rule_set() -> None:
    """The four hand-written sets; a template without one (train-ticket, made from traces) runs generated rules."""
    assert templates() == TEMPLATES
    assert set(TEMPLATES) < set(scenario_templates())
    for name in set(scenario_templates()) - set(TEMPLATES):
        assert rules_for_scenario(load_scenario(name)).source == f"generated/{name}.yaml"


@pytest.mark.parametrize("template", TEMPLATES)
def test_builtin_rules_load_and_cover_the_alert_kinds(template: str) -> None:
    rules = rules_for(template)
    assert rules.source == f"rules/{template}.yaml"
    names = set(rules.alert_names)
    assert COMMON | EXTRA[template] <= names, sorted(COMMON | EXTRA[template] - names)
    if template != "llm-inference":
        assert not any(n.startswith("GPU") for n in names)
    for group in rules.groups:
        for rule in group.rules:
            assert rule.labels.get("severity") in ("page", "ticket"), rule.alert
            assert {"summary", "description"} <= set(rule.annotations), rule.alert
            text = " ".join([rule.alert, group.name, *rule.annotations.values()])
            assert not FORBIDDEN.search(text), (rule.alert, FORBIDDEN.search(text))
    # the same file loaded by path gives the same rules
    assert load_rules(rules_path(template)).alert_names == rules.alert_names


def test_rule_text_names_no_fault_of_the_catalogue() -> None:
    """Alert names, labels and annotations are what a team writes about symptoms; none spells out a fault kind."""
    from opsworld.faults import CATALOGUE, FAULT_TYPES

    words = {e.lower() for e in CATALOGUE} | {t.kind for t in FAULT_TYPES} | {t.__name__.lower() for t in FAULT_TYPES}
    squash = lambda text: re.sub(r"[^a-z0-9]", "", text.lower())   # noqa: E731
    for template in TEMPLATES:
        for group in rules_for(template).groups:
            for rule in group.rules:
                text = " ".join([rule.alert, group.name, *rule.labels.values(), *rule.annotations.values()])
                found = {w for w in words if w in text.lower() or squash(w) in squash(text)}
                assert not found, (template, rule.alert, found)


@pytest.mark.parametrize("template", TEMPLATES)
def test_builtin_rules_pass_promtool(template: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    done = subprocess.run([promtool, "check", "rules", str(rules_path(template))], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_slo_rules_follow_each_template_objectives() -> None:
    shop = {r.alert: r for g in rules_for("online-shop").groups for r in g.rules if r.alert == "ErrorBudgetBurnFast"}
    burns = [r for g in rules_for("online-shop").groups for r in g.rules if r.alert == "ErrorBudgetBurnFast"]
    assert shop and {r.labels["objective"] for r in burns} == {"99.9%", "99.5%"}
    checkout = next(r for r in burns if r.labels["objective"] == "99.5%")
    assert "(14.4 * 0.005)" in checkout.expr and "[1h]" in checkout.expr and "[5m]" in checkout.expr
    assert checkout.labels["severity"] == "page"
    latency = [r for g in rules_for("hotel-reservation").groups for r in g.rules
               if r.alert == "LatencyObjectiveBreached"]
    assert sorted(r.expr.strip().rsplit(">", 1)[1].strip() for r in latency) == ["0.3", "0.5"]


# ---- bad files -------------------------------------------------------------------------------------------------------
GOOD_RULE = "      - alert: HighErrorRate\n        expr: rate(errors_total[5m]) > 1\n"


def _file(rules: str, group: str = "  - name: app\n    rules:\n") -> str:
    return "groups:\n" + group + rules


@pytest.mark.parametrize("text, where, words", [
    (_file(GOOD_RULE * 2 + "      - alert: Broken\n        expr: sum(rate(x[5m])\n"), "groups[0].rules[2].expr",
     ["parse error", "fix the PromQL expression"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        for: 5\n"), "groups[0].rules[0].for",
     ["has no unit", "30s"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        for: 5 minutes\n"), "groups[0].rules[0].for",
     ["not a duration"]),
    (_file("      - alert: Slow\n        exp: up == 0\n"), "groups[0].rules[0].exp", ["unknown field", "expr"]),
    (_file("      - alert: Slow\n"), "groups[0].rules[0].expr", ["required field is missing", "expr:"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        labels: {0bad: x}\n"), "groups[0].rules[0].labels",
     ["invalid label name"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        annotations: {summary: '{{ $labls.x }}'}\n"),
     "groups[0].rules[0].annotations", ["undefined variable $labls"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        annotations: {summary: '{{ range $labels }}'}\n"),
     "groups[0].rules[0].annotations", ["'range' is not supported"]),
    (_file("      - alert: Slow\n        expr: up == 0\n        labels: {value: '{{ $value }}'}\n"),
     "groups[0].rules[0].labels", ["cannot use $value"]),
    (_file("      - record: job:up:sum\n        expr: sum(up)\n"), "groups[0].rules[0]", ["recording rule"]),
    (_file("      - alert: Bad Name\n        expr: up == 0\n"), "groups[0].rules[0].alert", ["not a valid alert name"]),
    (_file(GOOD_RULE, "  - name: app\n    rules:\n" + GOOD_RULE + "  - name: app\n    rules:\n"), "",
     ["repeated"]),
    (_file(GOOD_RULE, "  - name: app\n    interval: 0s\n    rules:\n"), "groups[0].interval", ["above 0"]),
    ("groups: [unclosed\n", "line 2", ["not valid YAML"]),
    ("- just a list\n", "", ["not a mapping", "groups:"]),
])
def test_bad_rule_files_give_one_line_errors(tmp_path: Path, text: str, where: str, words: list[str]) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RuleError) as err:
        load_rules(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert where in message, message
    for word in words:
        assert word in message, message


def test_load_rules_from_text_and_mapping() -> None:
    text = _file(GOOD_RULE + "        for: 1h30m\n        keep_firing_for: 5m\n")
    rules = load_rules(text)
    rule = rules.groups[0].rules[0]
    assert (rules.source, rules.groups[0].interval, rule.for_, rule.keep_firing_for) == ("<rules>", 30.0, 5400.0, 300.0)
    assert load_rules({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]}).alert_names == ["A"]
    with pytest.raises(RuleError, match=r"^<rules>: groups\[0\]\.rules\[0\]\.expr: "):
        load_rules({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up =="}]}]})


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(RuleError, match="did you mean 'online-shop'.*use one of: hotel-reservation"):
        rules_for("online-shops")


# ---- durations -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25), ("1d", 86400.0), ("2w", 14 * 86400.0),
    ("1y", 365 * 86400.0), ("0", 0.0), (0, 0.0), ("1h0m5s", 3605.0),
])
def test_parse_duration_like_prometheus(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", 5, "1.5h", "30m1h", "5 m", "-5m", "1hh", True, None])
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("30s", "5m", "1h30m", "250ms", "1d", "0s"):
        assert format_duration(parse_duration(text)) == text


# ---- templates and wire formats -------------------------------------------------------------------------------------
def test_templates_render_labels_values_and_functions() -> None:
    labels = {"service": "cart", "pod": "cart-0", "__name__": "up"}
    render = lambda text, value=0.0: compile_template(text).render(labels, value)   # noqa: E731
    assert render("{{ $labels.service }} at {{ $value }}", 0.25) == "cart at 0.25"
    assert render("{{ .Labels.pod }}/{{ .Value }}", 3.0) == "cart-0/3"
    assert render("[{{ $labels.missing }}]") == "[]"
    assert render("{{ $value | humanizePercentage }}", 0.12345) == "12.35%"
    assert render("{{ $value | humanize }}", 1234567.0) == "1.235M"
    assert render("{{ $value | humanizeDuration }}", 90061.0) == "1d 1h 1m 1s"
    assert render('{{ printf "%.2f" $value }} {{ index $labels "service" | toUpper }}', 1.0 / 3) == "0.33 CART"
    assert render("a  {{- $labels.service -}}  b") == "acartb"
    assert render("{{/* a comment */}}x") == "x"
    assert render('{{ reReplaceAll "-[0-9]+$" "" $labels.pod }}') == "cart"
    assert compile_template("{{ $labels.x }}").uses == {"labels"}
    for bad in ("{{ if $value }}x{{ end }}", "{{ query \"up\" }}", "{{ $value", "{{ $nope }}", "{{ humanize }}x",
                "{{ humanize 1 2 }}", "{{ 1 | humanize 2 }}", "{{ $value | $value }}", "{{ .Nope }}", "{{ printf }}"):
        with pytest.raises(TemplateError):
            compile_template(bad)


def test_humanize_functions_match_prometheus() -> None:
    assert (humanize(0.0), humanize(0.0012), humanize(1000.0), humanize(math.inf)) == ("0", "1.2m", "1k", "+Inf")
    assert humanize1024(1048576.0) == "1Mi"
    assert (humanize_duration(0.15), humanize_duration(2.5), humanize_duration(200.0)) == ("150ms", "2.5s", "3m 20s")
    assert humanize_percentage(0.5) == "50%"
    assert humanize_timestamp(1_795_000_000.5) == "2026-11-18 11:06:40.5 +0000 UTC"
    assert printf("%d%% %s %v %5.1f|%q", 12.0, "x", 0.5, 2.25, "a") == '12% x 0.5   2.2|"a"'


def test_wire_formats() -> None:
    assert [go_float(v) for v in (0.0, 1.0, 0.25, 1e6, 123456.0, 1e-5, -2.5, math.nan)] == \
        ["0", "1", "0.25", "1e+06", "123456", "1e-05", "-2.5", "NaN"]
    assert [go_exp_float(v) for v in (1.0, 15.0, 0.0, 0.125, math.inf)] == ["1e+00", "1.5e+01", "0e+00", "1.25e-01",
                                                                           "+Inf"]
    assert rfc3339(1_795_000_000.0) == "2026-11-18T11:06:40Z"
    assert rfc3339(1_795_000_000.25) == "2026-11-18T11:06:40.25Z"
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
    # Prometheus' fingerprint of {} is FNV-1a's offset basis; label order does not matter
    assert fingerprint({}) == "cbf29ce484222325"
    assert fingerprint({"a": "1", "b": "2"}) == fingerprint({"b": "2", "a": "1"}) != fingerprint({"a": "2", "b": "1"})
