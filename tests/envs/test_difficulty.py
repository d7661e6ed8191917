"""The difficulty dial: easy is the catalogue as published, realistic and hard turn up what makes real incidents hard,
every front end takes it, and `play` draws the system from the seed."""

from __future__ import annotations

from dataclasses import fields

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

import opsworld  # noqa: F401  (registers the envs)
from opsworld.cli import app
from opsworld.envs.difficulty import DEFAULT_LEVEL, LEVELS, Difficulty, level
from opsworld.envs.generator import CatalogueGenerator
from opsworld.envs.tools import ToolSession
from opsworld.envs.worlds import system_for_seed
from opsworld.spec import Scenario, load_scenario, templates

runner = CliRunner()


def test_levels_turn_every_dial_up_in_order() -> None:
    easy, realistic, hard = (LEVELS[n] for n in ("easy", "realistic", "hard"))
    assert easy == Difficulty() and easy.coverage() is None and DEFAULT_LEVEL == "realistic"
    for f in fields(Difficulty):
        assert getattr(easy, f.name) <= getattr(realistic, f.name) <= getattr(hard, f.name), f.name
    assert realistic.spread > 0 and realistic.monitoring > 0 and realistic.red_herrings > 0
    assert not realistic.coverage().off and hard.coverage().missing > realistic.coverage().missing


def test_a_dial_out_of_range_or_an_unknown_level_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="spread must be in 0..1"):
        Difficulty(spread=2.0)
    with pytest.raises(ValueError, match="easy, realistic, hard"):
        level("nightmare")
    result = runner.invoke(app, ["play", "--difficulty", "nightmare"], input="quit\n")
    assert result.exit_code == 2 and "--difficulty" in result.output and "realistic" in result.output


def test_easy_draws_exactly_as_the_catalogue_generator_always_did() -> None:
    shop = load_scenario("online-shop")
    plain, easy = CatalogueGenerator(), LEVELS["easy"].generator()
    for seed in range(30):
        a = plain.draw(shop, np.random.default_rng([seed, 0x1C1D]))
        b = easy.draw(shop, np.random.default_rng([seed, 0x1C1D]))
        assert a == b


def test_realistic_draws_parameters_and_a_busier_change_log() -> None:
    shop = load_scenario("online-shop")
    gen = LEVELS["realistic"].generator(entries=["bad_config_push"])
    draws = [gen.draw(shop, np.random.default_rng([seed, 0x1C1D])) for seed in range(40)]
    rates = {d.fault.rate for d in draws}
    assert len(rates) > 3                                          # not the published 0.3 every time
    assert np.mean([len(d.also) for d in draws]) > 0.5             # healthy changes and flaps around it


def test_play_draws_the_system_from_the_seed() -> None:
    drawn = [system_for_seed(seed) for seed in range(60)]
    names = {d for d in drawn if isinstance(d, str)}
    assert names == set(templates())                             # every template comes up
    generated = [d for d in drawn if isinstance(d, Scenario)]
    assert generated and all(6 <= len(d.components) <= 60 for d in generated)
    again = system_for_seed(drawn.index(generated[0]))
    assert again.model_dump() == generated[0].model_dump()       # the same seed, the same system


def test_a_thousand_play_seeds_never_draw_the_same_incident() -> None:
    # what shapes an incident's numbers: the system, the fault with every parameter and its onset (to the tick), the
    # day's load, and the changes, flaps and anomalies beside it; `play --seed S` draws them as here
    from opsworld.faults.catalogue import CATALOGUE
    from opsworld.faults.ranges import ranges_of

    generator = level("realistic").generator(horizon=3600.0)
    seen: dict[tuple, int] = {}
    loads = set()
    for seed in range(1000):
        system = system_for_seed(seed)
        scenario = load_scenario(system) if isinstance(system, str) else system
        d = generator.draw(scenario, np.random.default_rng([seed, 0x1C1D]))     # as `Incidents.reset` draws it

        def tick(f) -> int:
            return round(f.onset_seconds(scenario) / 10.0)
        fault = (d.entry, d.fault.target, tuple(getattr(d.fault, n) for n in ranges_of(CATALOGUE[d.entry])),
                 tick(d.fault))
        beside = tuple(sorted((f.kind, f.target, tick(f), getattr(f, "factor", None)) for f in (*d.also, *d.others)))
        key = (scenario.name, fault, beside)
        assert key not in seen, f"seeds {seen[key]} and {seed} drew the same incident"
        seen[key] = seed
        loads |= {f.factor for f in d.also if f.kind == "load_level"}
    assert len(loads) == 8 and min(loads) < 0.8 and max(loads) > 1.25          # the day's load varies


def test_the_days_load_moves_every_number_and_breaks_nothing() -> None:
    from opsworld.engine import Engine
    from opsworld.faults import Injector
    from opsworld.faults.traffic import LoadLevel

    engine = Engine("online-shop", worlds=3, seed=0)
    injector = Injector(engine)
    injector.add(LoadLevel(factor=0.78), worlds=[0])
    injector.add(LoadLevel(factor=1.28), worlds=[2])
    requests = np.zeros(3)
    for _ in range(180):
        truth = injector.step()
        requests += truth.requests.sum(axis=1)
        assert not truth.slo_breached.any() and not truth.failed.any()
    assert np.allclose(requests / requests[1], [0.78, 1.0, 1.28], rtol=0.02)


def test_a_realistic_shift_runs_with_its_own_alerting() -> None:
    easy = ToolSession("online-shop", seed=3, fault="disk_filling", horizon=1800.0)
    hard = ToolSession("online-shop", seed=3, fault="disk_filling", horizon=1800.0, difficulty="hard")
    assert easy.difficulty == LEVELS["easy"] and hard.difficulty == LEVELS["hard"]
    assert hard.inc.telemetry.rules is not None and easy.inc.telemetry.rules is not None
    assert hard.inc.telemetry.rules != easy.inc.telemetry.rules         # missing, mis-tuned, noisy rules
    result = hard.call("list_changes", {})
    assert not result.error
    hard.call("submit", {"components": ["checkoutservice"], "fault_class": "disk_fill"})
    assert hard.done and hard.report().fault == "disk_fill"


def test_the_gym_env_takes_the_dial() -> None:
    env = gym.make("opsworld/Incident-v0", horizon=600.0, difficulty="realistic")
    obs, info = env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    env.close()
    with pytest.raises(ValueError, match="unknown difficulty"):
        gym.make("opsworld/Incident-v0", difficulty="nope")
