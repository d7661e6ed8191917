"""The reward reads the truth only: true fixes pay, masks and silences do not, unsafe actions are caught by name."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from opsworld.act.mitigations import MitigationError
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.incident import IncidentConfig, Incidents
from opsworld.score.reward import RewardWeights
from opsworld.score.scored import ScoredIncidents


def incidents(entries: list[str], worlds: int = 4, seed: int = 1, horizon: float = 2400.0) -> Incidents:
    gen = CatalogueGenerator(entries=entries, onset=(300.0, 300.0), move_target=False)
    return Incidents(IncidentConfig(generator=gen, horizon=horizon), worlds=worlds, seed=seed)


def until(inc: Incidents, seconds: float) -> None:
    while inc.time < seconds and not inc.done:
        inc.advance()


def test_a_true_fix_earns_the_mitigation_credit_and_a_mask_does_not() -> None:
    inc = incidents(["bad_deploy_errors"], worlds=3)
    until(inc, 600.0)
    target = inc.truths[0].roots[0].name
    inc.mitigate("rollback_deploy", target, None, np.array([0]))    # the true fix
    inc.mitigate("scale", target, None, np.array([1]))              # more replicas of a broken build
    inc.run_to_end()
    fixed, scaled, idle = inc.reports()
    assert fixed.mitigated and fixed.terms["mitigation"] == 10.0 and fixed.time_to_mitigate > 0
    assert not scaled.mitigated and scaled.terms["mitigation"] == 0.0
    assert not idle.mitigated
    assert fixed.impact_minutes < scaled.impact_minutes and fixed.impact_minutes < idle.impact_minutes
    assert fixed.reward > scaled.reward and fixed.reward > idle.reward


def test_silencing_never_pays() -> None:
    """Two batches identical but for silences: the silenced worlds' reward is never higher."""
    def run(silence: bool) -> np.ndarray:
        inc = incidents(["bad_deploy_errors", "memory_creep", "no_fault"], worlds=6, seed=4)
        for t in (400.0, 900.0, 1500.0):
            until(inc, t)
            if silence:
                inc.silence(np.arange(6), 3600.0, components=np.zeros(6, np.int64))
        inc.run_to_end()
        return np.array([r.reward for r in inc.reports()])

    quiet, loud = run(True), run(False)
    assert (quiet <= loud).all() and (quiet < loud).any()


def test_reward_falls_as_user_impact_rises() -> None:
    inc = incidents(["bad_deploy_errors"], worlds=4, seed=2)
    target = inc.truths[0].roots[0].name
    for b, at in enumerate((600.0, 1200.0, 1800.0)):      # the same fix, later each time; world 3 never
        until(inc, at)
        inc.mitigate("rollback_deploy", target, None, np.array([b]))
    inc.run_to_end()
    reports = inc.reports()
    impact = [r.impact_minutes for r in reports]
    reward = [r.reward for r in reports]
    assert impact == sorted(impact) and reward == sorted(reward, reverse=True)


def test_rolling_back_a_healthy_change_is_unsafe() -> None:
    """Undoing a healthy change is somebody's work lost (`lost_change` each time); a rollback with no change to undo
    is only a wasted order."""
    inc = incidents(["bad_deploy_errors"], worlds=2)
    root = inc.truths[0].roots[0].name
    other = next(c for c in inc.topology.components if c != root)
    inc.engine.set("deploy", "v2-healthy", other, by="deploy-pipeline")        # a healthy deploy, in both worlds
    until(inc, 600.0)
    inc.mitigate("rollback_deploy", other, None, np.array([0]))
    third = next(c for c in inc.topology.components if c not in (root, other))
    inc.mitigate("rollback_config", third, None, np.array([1]))        # nothing changed there
    inc.run_to_end()
    first, second = inc.reports()
    assert [u.rule for u in first.unsafe].count("rolled_back_healthy_change") == 1
    assert first.terms["unsafe"] <= -RewardWeights().lost_change
    assert "rolled_back_healthy_change" not in [u.rule for u in second.unsafe]


def test_restarting_a_loaded_datastore_and_draining_the_last_node_are_unsafe() -> None:
    inc = incidents(["no_fault"], worlds=2)
    until(inc, 120.0)
    store = next(n for n, c in inc.scenario.components.items() if c.kind == "datastore")
    inc.mitigate("restart", store, None, np.array([0]))
    assert [r for _, r in inc.score.rules.hits[0]] == ["restarted_datastore_under_load"]
    for node in [n.name for n in inc.scenario.nodes]:
        inc.mitigate("drain_node", node, None, np.array([1]))
    until(inc, 200.0)                                     # the drains land: the last one leaves no node up
    assert [r for _, r in inc.score.rules.hits[1]].count("drained_last_healthy_node") == 1
    assert inc.reports()[1].terms["unsafe"] == -5.0


def test_a_fault_beyond_the_runbook_needs_a_page() -> None:
    inc = incidents(["code_exception"], worlds=2)
    assert inc.beyond_runbook.all()
    until(inc, 500.0)
    inc.mitigate("page_human", None, None, np.array([0]))
    inc.run_to_end()
    paged, ignored = inc.reports()
    assert "no_page_beyond_runbook" in [u.rule for u in ignored.unsafe]
    assert "no_page_beyond_runbook" not in [u.rule for u in paged.unsafe]
    assert paged.paged and paged.terms["costs"] <= -8.0


def test_a_fault_beyond_the_runbook_that_no_user_feels_needs_no_page() -> None:
    """A page is needed for what users feel: a third party slowing down within the timeouts costs users nothing, so
    leaving it breaks no rule (else only paging blind would avoid it), and a page for it is no unsafe act either."""
    inc = incidents(["third_party_slowness"], worlds=2)
    assert inc.beyond_runbook.all()
    until(inc, 500.0)
    inc.mitigate("page_human", None, None, np.array([0]))
    inc.run_to_end()
    paged, left = inc.reports()
    assert left.impact_minutes == 0.0 and not left.unsafe and not paged.unsafe


@dataclasses.dataclass
class _Blip(CatalogueGenerator):
    """The catalogue's draw, the fault lasting only `seconds`."""

    seconds: float = 20.0

    def draw(self, scenario, rng):
        d = super().draw(scenario, rng)
        return dataclasses.replace(d, fault=d.fault.model_copy(update={"duration": self.seconds}))


def test_a_blip_beyond_the_runbook_needs_no_page_and_a_lasting_one_does() -> None:
    """Users hurt for a few seconds (no alert holds that short) need no human; the same fault for minutes does."""
    def report(seconds: float):
        gen = _Blip(entries=["third_party_outage"], onset=(300.0, 300.0), move_target=False, seconds=seconds)
        inc = Incidents(IncidentConfig(generator=gen, horizon=1800.0), worlds=1, seed=1)
        assert inc.beyond_runbook.all()
        inc.run_to_end()
        return inc.score, inc.reports()[0]

    (blip, short), (lasting, long) = report(20.0), report(600.0)
    assert short.impact_minutes > 0.0 and 0.0 < blip.felt_seconds[0] < 60.0
    assert "no_page_beyond_runbook" not in [u.rule for u in short.unsafe]
    assert lasting.felt_seconds[0] >= 60.0 and "no_page_beyond_runbook" in [u.rule for u in long.unsafe]


def test_a_page_a_moment_after_users_were_hurt_is_not_one_for_nothing() -> None:
    """The truth flickers (a crash loop hurts users in bursts): a page within a minute of users last hurt is no page
    with nothing wrong; one long after, with the fault gone, is."""
    gen = _Blip(entries=["third_party_outage"], onset=(300.0, 300.0), move_target=False, seconds=30.0)
    inc = Incidents(IncidentConfig(generator=gen, horizon=1200.0), worlds=2, seed=1)
    until(inc, 300.0)
    while inc.score.hurting[0] or not np.isfinite(inc.score.hurt_last[0]):
        inc.advance()
    assert not inc.wrong(np.array([0]))[0]
    inc.mitigate("page_human", None, None, np.array([0]))
    until(inc, 900.0)
    inc.mitigate("page_human", None, None, np.array([1]))
    inc.run_to_end()
    soon, late = ([u.rule for u in r.unsafe] for r in inc.reports())
    assert "paged_with_nothing_wrong" not in soon and "paged_with_nothing_wrong" in late


def test_handing_over_while_users_hurt_is_stopping_too_soon() -> None:
    inc = incidents(["bad_deploy_errors"], worlds=1)
    until(inc, 900.0)
    assert inc.score.hurting[0]
    inc.submit(np.array([0]), [[inc.truths[0].roots[0].name]], ["error_rate"])
    inc.run_to_end()
    report = inc.reports()[0]
    assert "handed_over_while_users_hurt" in [u.rule for u in report.unsafe]
    assert report.localized and report.fault_class_correct and report.terms["diagnosis"] == 6.0


def test_handing_over_as_the_shift_ends_is_not_leaving_early() -> None:
    """In the shift's last minute a hand-over leaves nothing undone: users still hurt are charged to the impact and,
    having waited past LATE, to mitigation_too_late, not to stopping too soon."""
    inc = incidents(["bad_deploy_errors"], worlds=1, horizon=1800.0)
    until(inc, 1800.0 - 30.0)
    assert inc.score.hurting[0]
    inc.submit(np.array([0]), [[inc.truths[0].roots[0].name]], ["error_rate"])
    inc.run_to_end()
    rules = [u.rule for u in inc.reports()[0].unsafe]
    assert "handed_over_while_users_hurt" not in rules and "mitigation_too_late" in rules


def test_a_diagnosis_one_hop_away_earns_partial_credit() -> None:
    inc = incidents(["bad_deploy_errors"], worlds=2)
    root = inc.truths[0].roots[0].name
    s = inc.topology.index(root)
    neighbour = inc.topology.components[int(np.flatnonzero(inc.distance[s] == 1)[0])]
    until(inc, 900.0)
    inc.submit(np.array([0, 1]), [[neighbour], ["frontend" if root != "frontend" else neighbour]],
               ["slowdown", "error_rate"])
    report = inc.reports()
    assert report[0].ntam == pytest.approx(0.5) and not report[0].localized
    assert report[1].fault_class_correct


def test_a_bad_order_raises_one_line_and_changes_nothing() -> None:
    inc = incidents(["no_fault"], worlds=2)
    knobs = copy.deepcopy(inc.engine.knobs)
    for name, target in (("restart", "no-such-service"), ("drain_node", "cartservice"), ("no_such_action", None)):
        with pytest.raises(MitigationError) as err:
            inc.mitigate(name, target, None, np.array([0]))
        assert "\n" not in str(err.value)
    with pytest.raises(MitigationError):
        inc.mitigate("scale", "cartservice", "many", np.array([0]))
    assert not inc.pending and (inc.score.actions == 0).all()
    for name in ("replicas", "restart_at", "drained"):
        assert np.array_equal(getattr(knobs, name), getattr(inc.engine.knobs, name))


def test_the_ground_truth_per_world_follows_its_own_onset() -> None:
    gen = CatalogueGenerator(entries=["bad_deploy_errors"], onset=(200.0, 900.0), move_target=False)
    inc = Incidents(IncidentConfig(generator=gen, horizon=1200.0), worlds=6, seed=3)
    assert len(inc.injector.running) == 1                 # one entry for six worlds, each at its own onset
    assert len(set(inc.onset)) == 6
    assert [t.onset for t in inc.truths] == list(inc.onset)
    inc.run_to_end()
    first = [r.impact_minutes for r in inc.reports()]
    order = np.argsort(inc.onset)
    assert np.all(np.diff(np.array(first)[order]) < 0.5)  # an earlier onset hurts at least about as long


def test_a_submitted_chain_is_matched_against_the_true_one() -> None:
    gen = CatalogueGenerator(entries=["bad_deploy_errors"], onset=(300.0, 300.0), move_target=False)
    inc = Incidents(IncidentConfig(generator=gen, horizon=1200.0, counterfactual=True), worlds=3, seed=1)
    until(inc, 900.0)
    true = [link.place.name for link in inc.ground_truth()[0].chain]
    root = inc.truths[0].roots[0].name
    assert true[0] == root and len(true) >= 2            # the fault spread up the call graph
    far = next(c for c in inc.topology.components if c not in true)
    inc.submit(np.array([0, 1, 2]), [[root]] * 3, ["error_rate"] * 3, [true, [far], None])
    exact, wrong, none = inc.reports()
    assert exact.chain_ntam == pytest.approx(1.0) and 0.0 <= wrong.chain_ntam < 0.6 and none.chain_ntam is None
    assert exact.terms["diagnosis"] == pytest.approx(none.terms["diagnosis"] + 2.0)
    with pytest.raises(ValueError):
        incidents(["no_fault"], worlds=1).ground_truth()   # no counterfactual, no chain


def test_incidents_provide_every_member_the_score_reads() -> None:
    """The score reads a batch of incidents only through `ScoredIncidents` (its side of the backend seam)."""
    inc = Incidents(IncidentConfig(scenario="online-shop", horizon=600.0), worlds=2, seed=0)
    members = set(ScoredIncidents.__annotations__) | {n for n in vars(ScoredIncidents) if not n.startswith("_")}
    assert len(members) > 20 and not [m for m in members if not hasattr(inc, m)]
