"""The train/test splits: which worlds and incidents each draws (held-out fault classes only in split c), their
evaluation through the rollout runner (deterministic, the same whatever the workers), the transfer gap, the world
record with `entries`, and `opsworld eval --split`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from opsworld.cli import app
from opsworld.envs.worlds import Difficulty, WorldGenerator, world_from_record
from opsworld.faults.catalogue import CATALOGUE
from opsworld.rollout import RolloutError, RolloutPlan, run_batch
from opsworld.rollout.runner import check
from opsworld.spec import templates
from opsworld.eval.splits import (HELD_OUT_CLASSES, SPLIT_B_TEMPLATES, SPLITS, TRAIN, TRAIN_DIFFICULTY, TRAIN_SERVICES, SplitError,
                                   SplitResult, evaluate_split, gap, held_out_entries, paired_se, split_table)

SHORT = dict(horizon=600.0)        # 60 ticks: the faults (onset 5-15 min) start in some episodes


def _incidents(generators: tuple[WorldGenerator, ...], count: int = 200) -> list:
    """`count` incidents drawn on worlds of the generators, spread over 5 worlds each."""
    worlds = [g.draw(seed) for g in generators for seed in range(5)]
    rng = np.random.default_rng(0)
    return [w.generator.draw(w.scenario, rng) for w in worlds for _ in range(count // len(worlds))]


def test_held_out_entries_are_those_of_the_held_out_classes() -> None:
    held = held_out_entries()
    assert {CATALOGUE[n].fault.kind for n in held} == set(HELD_OUT_CLASSES)
    assert set(held) == {n for n, e in CATALOGUE.items() if e.fault.kind in HELD_OUT_CLASSES}


@pytest.mark.parametrize("split", ["train", "a", "b", "d"])
def test_held_out_faults_are_never_drawn_outside_split_c(split: str) -> None:
    generators = (TRAIN,) if split == "train" else SPLITS[split].generators
    draws = _incidents(generators)
    assert len(draws) == 200
    assert not {d.entry for d in draws} & set(held_out_entries())
    assert not {f.kind for d in draws for f in (d.fault, *d.also)} & set(HELD_OUT_CLASSES)
    assert len({d.entry for d in draws}) > 10           # and the rest of the catalogue is there


def test_split_c_draws_only_and_every_held_out_class() -> None:
    draws = _incidents(SPLITS["c"].generators)
    assert {d.entry for d in draws} == set(held_out_entries())
    assert {d.fault.kind for d in draws} == set(HELD_OUT_CLASSES)


def test_what_each_split_is() -> None:
    assert list(SPLITS) == ["a", "b", "c", "d"]
    assert SPLITS["a"].generators == (TRAIN,)
    assert TRAIN.services == TRAIN_SERVICES and TRAIN.difficulty == TRAIN_DIFFICULTY
    b = SPLITS["b"].generators
    assert [g.template for g in b] == list(SPLIT_B_TEMPLATES) and len(b) == 4
    assert {g.draw(1).scenario.name for g in b} == set(SPLIT_B_TEMPLATES) < set(templates())
    assert all(g.difficulty == TRAIN_DIFFICULTY and set(g.exclude) == set(held_out_entries()) for g in b)
    (c,) = SPLITS["c"].generators
    assert c.services == TRAIN_SERVICES and c.entries == held_out_entries() and c.difficulty == TRAIN_DIFFICULTY
    (d,) = SPLITS["d"].generators
    assert d.difficulty == Difficulty(red_herrings=0.5, hidden_couplings=1.0, telemetry_gaps=1.0)
    assert d.services == TRAIN_SERVICES and d.exclude == TRAIN.exclude
    assert d.draw(3).config().telemetry_gaps == pytest.approx(0.3)


def test_a_world_record_keeps_its_entries() -> None:
    generator = WorldGenerator(services=(5, 12), entries=("deadlock", "network_delay"))
    world = generator.draw(7)
    again = world_from_record(json.loads(json.dumps(world.record)))
    assert world.record["entries"] == ["deadlock", "network_delay"] and again.record == world.record
    assert again.generator.entries == ("deadlock", "network_delay")
    assert again.scenario.model_dump() == world.scenario.model_dump()
    # the default adds nothing, so the records (and rollout files) written before read and compare the same
    plain = WorldGenerator(services=(5, 12)).draw(7).record
    assert "entries" not in plain and world_from_record(plain).generator.entries is None


def test_a_rollout_plan_draws_only_its_entries_and_checks_their_names() -> None:
    plan = RolloutPlan(episodes=6, batch=6, seed=2, services=(5, 10), entries=("deadlock", "fd_exhaustion"),
                       difficulty=TRAIN_DIFFICULTY, horizon=300.0)
    rows = run_batch(plan, 0).table.to_pylist()
    assert {r["fault_entry"] for r in rows} <= {"deadlock", "fd_exhaustion"}
    assert json.loads(rows[0]["world"])["entries"] == ["deadlock", "fd_exhaustion"]
    for bad in (replace(plan, entries=("deadlock", "no_such_fault")), replace(plan, exclude=("nope",))):
        with pytest.raises(RolloutError, match="^(entries|exclude): no catalogue entry named (no_such_fault|nope);"):
            check(bad)


def test_evaluate_split_is_deterministic_whatever_the_workers() -> None:
    one = split_table(["random", "do-nothing"], ["a", "b"], episodes=8, batch=4, workers=1, **SHORT)
    two = split_table(["random", "do-nothing"], ["a", "b"], episodes=8, batch=4, workers=2, **SHORT)
    assert one == two                    # runtime_s is left out of the comparison
    assert [(r.agent, r.split, r.episodes) for r in one] == [("random", "a", 8), ("random", "b", 8),
                                                              ("do-nothing", "a", 8), ("do-nothing", "b", 8)]
    alone = evaluate_split("random", "b", episodes=8, batch=4, workers=1, **SHORT)
    assert alone == one[1]               # an agent's result does not depend on what ran beside it
    for r in one:
        assert np.isfinite(r.mean_reward) and r.se_reward >= 0 and r.runtime_s > 0
        assert 0 <= r.unsafe_share <= 1 and r.unsafe_per_episode >= r.unsafe_share
        # each rule's count is of episodes, so none exceeds the episodes with any unsafe action
        assert all(0 < n <= round(r.unsafe_share * r.episodes) for _, n in r.unsafe_rules)
        assert (r.unsafe_share > 0) == bool(r.unsafe_rules) and len(r.rewards) == r.episodes
        assert np.mean(r.rewards) == pytest.approx(r.mean_reward, abs=1e-3)
    assert one[0].mean_reward != one[2].mean_reward        # random acts, do-nothing does not
    assert evaluate_split("random", "a", episodes=8, batch=4, seed=1, workers=1, **SHORT) != one[0]


@pytest.mark.parametrize("kwargs, says", [
    (dict(agent="random", split="e"), "no split named 'e'"),
    (dict(agent="nobody", split="a"), "no agent named 'nobody'"),
    (dict(agent="random", split="a", episodes=0), "episodes must be at least 1"),
])
def test_a_bad_evaluation_says_one_line(kwargs: dict, says: str) -> None:
    with pytest.raises(SplitError, match=says) as info:
        evaluate_split(**kwargs)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def _result(agent: str, split: str, reward: float) -> SplitResult:
    return SplitResult(split, agent, 10, reward, 1.0, 0.5, 0.5, 0.1, 2.0, 0.2, 0.3, 1.0)


def test_gap_is_the_advantage_over_random_and_the_share_of_split_a_kept() -> None:
    results = [_result("random", "a", -50.0), _result("random", "b", -40.0), _result("ppo", "a", 50.0),
               _result("ppo", "b", 40.0), _result("do-nothing", "a", -60.0), _result("do-nothing", "b", -30.0)]
    gaps = {(g.agent, g.split): g for g in gap(results)}
    assert set(gaps) == {("ppo", "a"), ("ppo", "b"), ("do-nothing", "a"), ("do-nothing", "b")}
    assert gaps["ppo", "a"].advantage == 100.0 and gaps["ppo", "a"].kept == 1.0
    assert gaps["ppo", "b"].advantage == 80.0 and gaps["ppo", "b"].kept == 0.8
    assert gaps["ppo", "b"].se_advantage == pytest.approx(2 ** 0.5, abs=1e-4)
    assert gaps["do-nothing", "b"].kept is None           # no advantage on (a) to keep


def test_the_advantage_is_paired_over_the_same_episodes() -> None:
    hard_easy = (-100.0, -10.0, -100.0, -10.0)            # what the episodes share cancels in the difference
    base = replace(_result("random", "a", -55.0), rewards=hard_easy)
    noise = (1.0, -1.0, 1.0, -1.0)
    better = replace(_result("ppo", "a", -45.0), rewards=tuple(r + 10.0 + d for r, d in zip(hard_easy, noise)))
    assert paired_se(better, base) == pytest.approx(np.std([1, -1, 1, -1], ddof=1) / 2)
    assert paired_se(better, _result("random", "a", -55.0)) == pytest.approx(2 ** 0.5)   # rewards unknown
    assert gap([base, better])[0].se_advantage == pytest.approx(0.5774, abs=1e-4)


def test_the_splits_do_not_import_torch() -> None:
    code = "import sys, opsworld.eval.splits; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- the command -----------------------------------------------------------------------------------------------------
runner = CliRunner()


def test_eval_split_prints_the_table() -> None:
    result = runner.invoke(app, ["eval", "--split", "a", "--agent", "random", "--agent", "do-nothing",
                                 "--episodes", "8", "--horizon", "5m", "--workers", "1"])
    assert result.exit_code == 0, result.output
    for text in ("random", "do-nothing", "vs random", "kept of (a)", "new seeds of the training distribution",
                 "unsafe, random on (a), episodes per rule: ",
                 "paged a human / handed over with a diagnosis: random (a)", "do-nothing (a) 0% / 0%"):
        assert text in result.stdout
    data = runner.invoke(app, ["eval", "--split", "a", "--agent", "random", "--agent", "do-nothing",
                               "--episodes", "8", "--horizon", "5m", "--workers", "1", "--batch", "4", "--json"])
    assert data.exit_code == 0, data.output
    payload = json.loads(data.stdout)
    assert [(r["agent"], r["episodes"]) for r in payload["results"]] == [("random", 8), ("do-nothing", 8)]
    assert payload["batch"] == 4 and payload["horizon"] == 300.0
    assert [(g["agent"], g["kept"]) for g in payload["gaps"]] == [("do-nothing", 1.0)]


def test_eval_split_takes_several_splits() -> None:
    data = runner.invoke(app, ["eval", "--split", "a", "--split", "c,a", "--agent", "do-nothing",
                               "--episodes", "2", "--horizon", "2m", "--workers", "1", "--json"])
    assert data.exit_code == 0, data.output
    assert [r["split"] for r in json.loads(data.stdout)["results"]] == ["a", "c"]


@pytest.mark.parametrize("args, says", [
    (["--split", "e"], "no split named 'e'"),
    (["--split", "a,e"], "no split named 'e'"),
    (["--split", "a", "--suite", "rca"], "exactly one of --suite"),
    ([], "exactly one of --suite"),
    (["--split", "a", "--agent", "nobody"], "no agent named 'nobody'"),
    (["--split", "a", "--leaderboard"], "go with --suite"),
    (["--split", "a", "--horizon", "soon"], "--horizon"),
    (["--split", "a", "--batch", "0"], "batch must be at least 1"),
])
def test_eval_split_refuses_a_bad_request_in_one_line(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["eval", *args])
    assert result.exit_code == 2
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
