"""The holes an attacker found in the reward, each reproduced and shown not to pay any more, paired over the same
episode (the same scenario, fault, seed and engine noise; only the attacker's habit differs):

1. a page made before anything is wrong is no insurance: the human looks, finds nothing, leaves, and the page costs;
2. users refused at the front door (an endpoint's rate limit) are users failed, whatever the interface;
3. a repair ordered before its fault's onset changes nothing about it, and the risky ones on a healthy target are
   named unsafe actions;
4. naming a zone or node is credited by the share of its components truly at fault.
And what must stay true: paging is the right act, and pays, for a fault beyond the runbook.
"""

from __future__ import annotations

import numpy as np
import pytest

from opsworld.act.mitigations import HUMAN_ARRIVE, HUMAN_DELAY
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.score.reward import RewardWeights, localisation
from opsworld.spec import load_scenario

W = RewardWeights()
ONE = np.array([0])


def episode(template: str, entry: str, orders: dict[int, list[tuple]] | None = None, onset: float = 600.0,
            horizon: float = 3600.0, seed: int = 3, **params) -> tuple[dict, Incidents]:
    """One world's episode with the fault of `entry` at `onset`, and the responder's `orders` by tick:
    {tick: [(mitigation, target, amount), ...]}. Returns its report and the incidents."""
    scenario = load_scenario(template)
    draw = CatalogueGenerator(entries=[entry], onset=(onset, onset)).draw(scenario, np.random.default_rng(1))
    if params:
        draw = type(draw)(draw.entry, draw.fault.model_copy(update=params), draw.also)
    inc = Incidents(IncidentConfig(scenario=template, horizon=horizon), worlds=1, seed=seed)
    inc.reset(seed, draws=[draw])
    while not inc.done:
        for name, target, amount in (orders or {}).get(inc.engine.tick, ()):
            inc.mitigate(name, target, amount, ONE)
        inc.advance()
    return inc.reports()[0].model_dump(), inc


def rules(report: dict) -> list[str]:
    return [u["rule"] for u in report["unsafe"]]


# ---- 1. a page before anything is wrong ----------------------------------------------------------------------------
def test_a_page_before_the_fault_is_no_insurance():
    """Paged at the start of a fault the runbook cannot fix, the human looks five minutes later, finds nothing and
    leaves: the fault is never repaired, the page answers neither `no_page_beyond_runbook` nor
    `mitigation_too_late`, and it costs the page, the human's minutes and the alert-fatigue rule."""
    alone, _ = episode("online-shop", "code_exception")
    early, inc = episode("online-shop", "code_exception", {0: [("page_human", None, None)]})
    assert early["impact_minutes"] == alone["impact_minutes"] > 5.0      # nothing was repaired
    assert not early["mitigated"] and inc.humans.minutes[0] == pytest.approx(HUMAN_ARRIVE / 60.0)
    assert "paged_with_nothing_wrong" in rules(early)
    for rule in ("no_page_beyond_runbook", "mitigation_too_late"):
        assert rule in rules(early) and rule in rules(alone)
    cost = W.page + W.human_minute * HUMAN_ARRIVE / 60.0 + W.unsafe
    assert early["reward"] == pytest.approx(alone["reward"] - cost)


def test_a_page_while_the_fault_acts_brings_a_human_who_fixes_it():
    """Paged once the fault acts, the human stays and repairs it `HUMAN_DELAY` after the page: less impact, the
    mitigation credit, no rule broken — the best-paying act for a fault beyond the runbook."""
    alone, _ = episode("online-shop", "code_exception")
    paged, inc = episode("online-shop", "code_exception", {70: [("page_human", None, None)]})     # 700 s
    assert paged["mitigated"] and paged["time_to_mitigate"] == pytest.approx(700.0 + HUMAN_DELAY - 600.0, abs=20)
    assert paged["impact_minutes"] < 0.8 * alone["impact_minutes"]      # 31 of 50 minutes hurt
    assert inc.humans.minutes[0] == pytest.approx(HUMAN_DELAY / 60.0, abs=0.5)
    assert not rules(paged) and paged["reward"] > alone["reward"] + W.unpaged


def test_paging_pays_for_a_mild_fault_beyond_the_runbook_too():
    """Where the fault hurts few users, the human's time is not cheaper than leaving it: not paging for a fault
    nobody on hand can fix costs `unpaged`, more than the page and the human's half hour."""
    alone, _ = episode("hotel-reservation", "int32_id_overflow")
    paged, _ = episode("hotel-reservation", "int32_id_overflow", {70: [("page_human", None, None)]})
    assert alone["impact_minutes"] < 1.0
    assert paged["reward"] > alone["reward"]
    assert W.unpaged > W.page + W.human_minute * HUMAN_DELAY / 60.0 - W.mitigation


def test_a_page_for_what_the_runbook_fixes_costs_more_than_fixing_it():
    """Paging everything loses to fixing what the runbook can fix: a human fixes a bad config half an hour after the
    page, a rollback within a minute; the page costs the human's time and earns no credit."""
    scenario = load_scenario("online-shop")
    fixed, _ = episode("online-shop", "bad_config_push", {75: [("rollback_config", _target(scenario,
                                                                                            "bad_config_push"),
                                                                None)]})
    paged, _ = episode("online-shop", "bad_config_push", {75: [("page_human", None, None)]})
    assert fixed["mitigated"] and not paged["mitigated"]
    assert paged["reward"] < fixed["reward"] - W.page - W.human_minute * HUMAN_DELAY / 60.0


def _target(scenario, entry: str) -> str:
    return CatalogueGenerator(entries=[entry]).draw(scenario, np.random.default_rng(1)).fault.target


# ---- 2. users refused at the door ----------------------------------------------------------------------------------
def test_shedding_users_on_a_calm_day_costs_what_it_costs_them():
    """No fault; the responder rate-limits every endpoint to half its normal rate for the hour. The refused users
    came and were turned away: about half the traffic is impact (it was under two points before)."""
    scenario = load_scenario("online-shop")
    calm, _ = episode("online-shop", "no_fault")
    shed = [("rate_limit", e.name, None) for e in scenario.traffic.endpoints]
    shed_all, inc = episode("online-shop", "no_fault", {0: []})
    rates = inc.engine.rates[0]
    orders = {0: [(n, t, 0.5 * float(rates[i])) for i, (n, t, _) in enumerate(shed)]}
    shed_all, _ = episode("online-shop", "no_fault", orders)
    assert calm["impact_minutes"] < 0.01
    assert shed_all["impact_minutes"] > 0.3 * 60.0
    assert shed_all["reward"] < calm["reward"] - 0.3 * 60.0 * W.impact
    assert shed_all["requests"] == pytest.approx(calm["requests"], rel=1e-9)     # the same users came
    assert "load_shedding_left_on" in rules(shed_all)


def test_refusing_users_never_hides_a_failure():
    """A certificate expires on a service every request needs; refusing 80% of users at the door does not make
    the incident look smaller than it is (it was -9,027 against -1,550 before)."""
    scenario = load_scenario("online-shop")
    kept, inc = episode("online-shop", "certificate_expiry", horizon=1800.0)
    rates = inc.engine.rates[0]
    orders = {0: [("rate_limit", e.name, 0.2 * float(rates[i])) for i, e in enumerate(scenario.traffic.endpoints)]}
    shed, _ = episode("online-shop", "certificate_expiry", orders, horizon=1800.0)
    assert kept["impact_minutes"] > 1.0
    assert shed["impact_minutes"] >= kept["impact_minutes"] and shed["reward"] < kept["reward"]


def test_a_flooding_client_is_no_user():
    """A client flood: blocking the source is the fix and costs users nothing; a rate limit at the endpoint masks
    it by refusing users along with the flood, and that shows."""
    scenario = load_scenario("online-shop")
    endpoint = _target(scenario, "client_flood")
    alone, inc = episode("online-shop", "client_flood", horizon=1800.0)
    p = inc.topology.endpoints.index(endpoint)
    blocked, _ = episode("online-shop", "client_flood", {65: [("block_client", endpoint, None)]}, horizon=1800.0)
    limited, _ = episode("online-shop", "client_flood",
                         {65: [("rate_limit", endpoint, float(inc.engine.rates[65][p]))]}, horizon=1800.0)
    assert blocked["mitigated"] and blocked["reward"] > alone["reward"]
    assert blocked["impact_minutes"] < limited["impact_minutes"]
    for other in (blocked, limited):           # users, not the flood (drawn with it: equal up to the draw)
        assert other["requests"] == pytest.approx(alone["requests"], rel=1e-3)


# ---- 3. repairs act on what is there -------------------------------------------------------------------------------
REMOVERS = [  # (template, entry, the mitigation that removes its cause, the rule for a healthy target)
    ("social-network", "db_primary_failure", "failover_db", "failed_over_healthy_primary"),
    ("llm-inference", "clock_skew", "sync_clock", "stepped_healthy_clock"),
    ("llm-inference", "expired_credentials", "rotate_credentials", "rotated_credentials_in_use"),
    ("social-network", "poison_message", "dead_letter", "dead_lettered_healthy_message"),
]


@pytest.mark.parametrize("template,entry,fix,rule", REMOVERS)
def test_a_repair_before_the_onset_changes_nothing(template, entry, fix, rule):
    """Ordered at the start on the catalogue's named target, the fix lands before the fault begins: the fault then
    strikes in full, and the order was a named unsafe action on a healthy target. Ordered once the fault acts, the
    same fix ends it."""
    scenario = load_scenario(template)
    draw = CatalogueGenerator(entries=[entry]).draw(scenario, np.random.default_rng(1)).fault
    target = draw.target if fix != "rotate_credentials" else getattr(draw, "caller", draw.target)
    alone, _ = episode(template, entry, horizon=1800.0)
    early, _ = episode(template, entry, {0: [(fix, target, None)]}, horizon=1800.0)
    late, _ = episode(template, entry, {65: [(fix, target, None)]}, horizon=1800.0)
    assert early["impact_minutes"] == alone["impact_minutes"] and not early["mitigated"]
    assert rule in rules(early) and rule not in rules(late)
    assert early["reward"] < alone["reward"]
    assert late["mitigated"] and late["reward"] > alone["reward"]


# ---- 4. localisation by breadth ------------------------------------------------------------------------------------
def test_naming_a_zone_or_node_is_diluted_by_its_breadth():
    inc = Incidents(IncidentConfig(scenario="online-shop", horizon=60.0), worlds=1, seed=0)
    topo, sc = inc.topology, inc.scenario
    root = "cartservice"
    s = topo.index(root)
    node = topo.nodes[int(topo.replica_node[int(topo.replica_starts[s])])]
    zone = next(n.zone for n in sc.nodes if n.name == node)

    def hosted(place: str) -> set[str]:
        return {topo.components[int(c)] for c, n in zip(topo.replica_component, topo.replica_node)
                if place in (topo.nodes[int(n)], sc.nodes[int(n)].zone)}

    assert localisation(inc, [root], [root]) == 1.0
    for place in (node, zone):
        assert root in hosted(place) and len(hosted(place)) > 1
        assert localisation(inc, [root], [place]) == pytest.approx(1.0 / len(hosted(place)))
    assert localisation(inc, [root], [zone]) <= localisation(inc, [root], [node]) < 1.0
    # a zone at fault, named by one of its nodes: part of the place, part of the credit
    assert localisation(inc, [zone], [node]) == pytest.approx(len(hosted(node)) / len(hosted(zone)))


def test_a_diagnosis_handed_over_before_the_fault_began_earns_nothing():
    """A hand-over at the start naming the right component and class is a guess from priors (the catalogue says
    where faults strike): no credit. The same diagnosis once the fault acts is credited."""
    scenario = load_scenario("online-shop")
    target = _target(scenario, "code_exception")

    def handed_over(at: int) -> dict:
        inc = Incidents(IncidentConfig(scenario="online-shop", horizon=900.0), worlds=1, seed=3)
        draw = CatalogueGenerator(entries=["code_exception"], onset=(300.0, 300.0)).draw(scenario,
                                                                                          np.random.default_rng(1))
        inc.reset(3, draws=[draw])
        while not inc.done:
            if inc.engine.tick == at:
                inc.submit(ONE, [[target]], ["error_rate"])
            inc.advance()
        return inc.reports()[0].model_dump()

    early, late = handed_over(0), handed_over(45)
    assert early["terms"]["diagnosis"] == 0.0 and not early["localized"] and early["ntam"] == 0.0
    assert late["terms"]["diagnosis"] == W.root_cause + W.fault_class and late["root_cause_correct"]
