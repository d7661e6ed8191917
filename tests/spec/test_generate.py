"""Generated topologies: their request graphs match Alibaba's published statistics, they are valid, healthy without
a fault, and the same seed gives the same system."""

import numpy as np
import pytest

from opsworld.envs.generator import PortableGenerator
from opsworld.envs.incident import Incidents
from opsworld.envs.worlds import Difficulty, WorldGenerator, world_from_record
from opsworld.spec import service_map
from opsworld.spec.generate import CALL_TYPES, CallGraphModel, TopologyGenerator, request_graphs
from opsworld.spec.loader import call_edges

# Alibaba 2021 microservice traces (see ../shared/DESIGN.md)
TARGETS = {"nodes": {0.5: 6, 0.9: 10, 0.99: 18}, "depth": {0.5: 3, 0.99: 4}, "fanout": {0.5: 4, 0.9: 7, 0.99: 16}}
SHARES = {"rpc": 0.59, "http": 0.13, "memcached": 0.13, "db": 0.017, "mq": 0.0}


def _check_statistics(graphs) -> None:
    values = {"nodes": [g.nodes for g in graphs], "depth": [g.depth for g in graphs],
              "fanout": [g.fanout for g in graphs]}
    for name, quantiles in TARGETS.items():
        for q, want in quantiles.items():
            got = float(np.quantile(values[name], q, method="inverted_cdf"))
            assert abs(got - want) <= 0.2 * want, f"{name} p{int(q * 100)}: {got} vs {want}"
    assert max(values["depth"]) <= 12
    calls = np.concatenate([g.call[1:] for g in graphs])
    for name, want in SHARES.items():
        got = float(np.mean(calls == CALL_TYPES.index(name)))
        assert abs(got - want) <= 0.05, f"{name} share {got:.3f} vs {want}"
    assert np.mean(calls == CALL_TYPES.index("mq")) < 0.005


def test_ten_thousand_request_graphs_of_generated_topologies_match_production_statistics():
    # 2,000 systems x 5 requests: few requests per system, so that no one system's graphs weigh on the quantiles
    rng = np.random.default_rng(11)
    generator = TopologyGenerator()
    graphs = [g for seed in range(2000) for g in request_graphs(generator.draw(seed), 5, rng)]
    assert len(graphs) == 10_000
    _check_statistics(graphs)


def test_the_call_graph_model_alone_matches_them_too():
    rng, model = np.random.default_rng(3), CallGraphModel()
    _check_statistics([model.draw(rng) for _ in range(10_000)])


def test_a_model_that_ignores_the_figures_fails_the_check():
    # the check can fail: graphs twice as wide do not pass
    wide, rng = CallGraphModel(extra_calls=6.0), np.random.default_rng(1)
    with pytest.raises(AssertionError):
        _check_statistics([wide.draw(rng) for _ in range(3000)])


def test_sizes_span_the_range_and_the_same_seed_gives_the_same_system():
    gen = TopologyGenerator()
    sizes = [len(gen.draw(s).components) for s in range(200)]
    assert min(sizes) <= 10 and max(sizes) >= 300
    assert gen.draw(42) == gen.draw(42)
    assert gen.draw(42) != gen.draw(43)
    small = TopologyGenerator(services=(5, 12))
    assert all(5 <= len(small.draw(s).components) <= 30 for s in range(30))


def test_generated_systems_have_every_kind_of_part():
    sc = TopologyGenerator(services=(300, 400)).draw(7)
    kinds = {c.kind for c in sc.components.values()}
    assert {"service", "cache", "datastore"} <= kinds
    assert len({n.zone for n in sc.nodes}) >= 1 and sc.certificates
    names = " ".join(sc.components)
    assert "generated" not in names and "chaos" not in names and "inject" not in names


def test_hidden_couplings_leave_calls_off_the_documented_map():
    sc = TopologyGenerator(services=(100, 150), hidden_couplings=0.3).draw(5)
    real, shown = set(call_edges(sc)), set(service_map(sc))
    assert shown < real
    assert 0.1 < 1 - len(shown) / len(real) < 0.5
    plain = TopologyGenerator(services=(100, 150)).draw(5)
    assert set(service_map(plain)) == set(call_edges(plain))


@pytest.mark.parametrize("seed", [0, 4, 6])
def test_a_generated_system_with_no_fault_hurts_no_one(seed):
    world = WorldGenerator(services=(5, 300)).draw(seed)
    config = world.config(horizon=1800)
    config.generator = PortableGenerator(entries=["no_fault"], controls=1.0)
    inc = Incidents(config, worlds=8, seed=seed)
    inc.run_to_end()
    assert all(r.impact_minutes == 0 for r in inc.reports())


def test_faults_fit_any_generated_system_and_hurt_it():
    world = WorldGenerator(services=(20, 40)).draw(2)
    inc = Incidents(world.config(), worlds=32, seed=2)
    kinds = {d.fault.kind for d in inc.draws}
    assert len(kinds) >= 10
    for d in inc.draws:
        d.fault.check(world.scenario)
    inc.run_to_end()
    assert np.mean([r.impact_minutes > 0 for r in inc.reports()]) > 0.3


def test_difficulty_adds_distractions_and_second_faults():
    gen = WorldGenerator(services=(20, 40), difficulty=Difficulty(red_herrings=1.0, compound=1.0))
    world = gen.draw(3)
    rng = np.random.default_rng(0)
    draws = [world.generator.draw(world.scenario, rng) for _ in range(50)]
    kinds = [f.kind for d in draws for f in d.also]
    assert kinds.count("benign_change") > 20 and "health_check_flap" in kinds
    assert sum(1 for d in draws if d.others) > 30       # the second fault is scored: `others`, not `also`
    plain = WorldGenerator(services=(20, 40)).draw(3)
    assert all(not plain.generator.draw(plain.scenario, rng).also for _ in range(30))


def test_held_out_entries_are_never_drawn():
    world = WorldGenerator(services=(20, 40), exclude=("bad_deploy_errors", "cpu_hog")).draw(1)
    rng = np.random.default_rng(0)
    assert not {world.generator.draw(world.scenario, rng).entry for _ in range(300)} & {"bad_deploy_errors", "cpu_hog"}


def test_a_world_is_rebuilt_exactly_from_its_record():
    gen = WorldGenerator(services=(10, 60), difficulty=Difficulty(hidden_couplings=0.5, red_herrings=0.5))
    world = gen.draw(17)
    again = world_from_record(world.record)
    assert again.scenario == world.scenario and again.generator == world.generator
    a = Incidents(world.config(horizon=900), worlds=4, seed=5)
    b = Incidents(again.config(horizon=900), worlds=4, seed=5)
    a.run_to_end()
    b.run_to_end()
    assert [r.reward for r in a.reports()] == [r.reward for r in b.reports()]


def test_an_episode_is_the_same_alone_or_in_a_batch():
    world = WorldGenerator(services=(10, 30)).draw(4)
    batch = Incidents(world.config(horizon=900), worlds=6, seed=9, first_world=100)
    batch.run_to_end()
    alone = Incidents(world.config(horizon=900), worlds=1, seed=9, first_world=103)
    alone.reset(9, draws=[batch.draws[3]])
    alone.run_to_end()
    assert alone.reports()[0].reward == batch.reports()[3].reward


def test_bad_ranges_are_refused_in_one_line():
    with pytest.raises(ValueError, match="services must be a range"):
        TopologyGenerator(services=(50, 10)).draw(0)


def test_telemetry_gaps_leave_dashboard_signals_stale():
    world = WorldGenerator(services=(20, 30), difficulty=Difficulty(telemetry_gaps=1.0)).draw(1)
    inc = Incidents(world.config(horizon=300), worlds=16, seed=1)
    assert inc.config.telemetry_gaps == pytest.approx(0.3)
    stale = []
    for _ in range(10):
        before = inc.dashboard.signals.copy()
        inc.advance()
        stale.append(np.all(inc.dashboard.signals == before, axis=-1).mean())
    assert 0.15 < np.mean(stale[1:]) < 0.45
    clear = Incidents(WorldGenerator(services=(20, 30)).draw(1).config(horizon=300), worlds=16, seed=1)
    clear.advance()
    before = clear.dashboard.signals.copy()
    clear.advance()
    assert np.all(clear.dashboard.signals == before, axis=-1).mean() < 0.05


def test_the_generate_command_writes_a_scenario_that_loads(tmp_path):
    from typer.testing import CliRunner

    from opsworld.cli import app
    from opsworld.spec import load_scenario

    out = tmp_path / "system.yaml"
    result = CliRunner().invoke(app, ["generate", "--seed", "3", "--services", "20-40", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert load_scenario(out) == TopologyGenerator(services=(20, 40)).draw(3)
    bad = CliRunner().invoke(app, ["generate", "--services", "40-20"])
    assert bad.exit_code != 0 and "services must be a range" in bad.output
