"""The PPO trainer: its advantages, its masked policy on any topology, bit-for-bit resume, workers, the CLI, and the
trained policy as an agent."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from opsworld.agents import AGENTS, agent_factory, context_of  # noqa: E402
from opsworld.cli import app  # noqa: E402
from opsworld.act.vocabulary import ARGUMENTS, VERBS, valid  # noqa: E402
from opsworld.envs.gym_env import IncidentVectorEnv  # noqa: E402
from opsworld.train.agent import SHIPPED, PolicyAgent, PolicyError, load_policy  # noqa: E402
from opsworld.train.collect import advantages_of, collect, priced, training_world  # noqa: E402
from opsworld.train.config import TrainConfig  # noqa: E402
from opsworld.train.features import Memory, global_features, service_features, structure_of  # noqa: E402
from opsworld.train.policy import ServicePolicy, TorchStructure  # noqa: E402
from opsworld.train.ppo import (CHECKPOINT, CURVE, METRICS, POLICY, _divergence, _imitation_loss,  # noqa: E402
                                _update, command_of, train)

TINY = dict(worlds=6, topologies=2, services=(5, 8), horizon=120.0, minibatch_size=16, update_epochs=2, hidden=16,
            threads=1, workers=1, imitate="heuristic-sre", imitate_iterations=1)
TIMING = ("charts/SPS", "charts/collect_seconds", "charts/update_seconds")


def test_advantages_discount_by_the_ticks_between_decisions():
    # one world, decisions at ticks 0 and 2 (tick 1: busy); lambda = 1 gives discounted returns minus values
    g, rewards = 0.9, np.array([[1.0], [2.0], [4.0]])
    values = np.array([[0.5], [0.0], [0.25]])
    asked = np.array([[True], [False], [True]])
    adv = advantages_of(rewards, values, asked, g, 1.0)
    assert adv[2, 0] == pytest.approx(4.0 - 0.25)
    assert adv[0, 0] == pytest.approx(1.0 + g * 2.0 + g * g * 4.0 - 0.5)
    assert adv[1, 0] == 0.0
    # lambda = 0: one-step TD over the two ticks to the next decision
    adv0 = advantages_of(rewards, values, asked, g, 0.0)
    assert adv0[0, 0] == pytest.approx(1.0 + g * 2.0 + g * g * 0.25 - 0.5)


def _env(config: TrainConfig, topology: int) -> IncidentVectorEnv:
    world = training_world(config, 0, topology)
    env = IncidentVectorEnv(num_envs=4, config=world.config(300.0), seed=topology)
    env.reset(seed=topology)
    return env


def test_one_network_acts_validly_on_topologies_of_any_size():
    config = TrainConfig(services=(5, 30))
    model = ServicePolicy(len(VERBS), ARGUMENTS, hidden=16)
    sizes = set()
    for topology in range(3):
        env = _env(config, topology)
        structure = structure_of(context_of(env))
        sizes.add(structure.components)
        obs = env._obs()
        memory, worlds = Memory(4, structure), np.arange(4)
        memory.observe(obs)
        s = torch.from_numpy(np.repeat(service_features(obs, structure, memory, worlds), 100, axis=0))
        g = torch.from_numpy(np.repeat(global_features(obs, memory, worlds), 100, axis=0))
        actions, logp, entropy, value = model(s, g, TorchStructure(structure), generator=torch.Generator())
        a = actions.numpy()
        assert valid(env._masks, a[:, 0], a[:, 1], a[:, 2]).all()
        assert torch.isfinite(logp).all() and (entropy > 0).all() and value.shape == (400,)
        # scoring the drawn actions gives back their log-probabilities
        again = model(s, g, TorchStructure(structure), actions=actions)[1]
        assert torch.allclose(again, logp, atol=1e-5)
    assert len(sizes) > 1


def test_memory_keeps_what_was_seen_and_done_until_the_episode_ends():
    env = _env(TrainConfig(services=(5, 30)), 0)
    context = context_of(env)
    structure = structure_of(context)
    memory = Memory(4, structure)
    obs = {k: v.copy() for k, v in env._obs().items()}
    S = structure.components
    obs["query"][:] = np.arange(S, dtype=np.float32)
    obs["query_signal"][:] = 0.0
    obs["query_signal"][0, 2] = 1.0                 # world 0 queried signal 2; the others nothing yet
    memory.observe(obs)
    obs["query_signal"][0] = 0.0
    obs["query_signal"][0, 5] = 1.0                 # then signal 5: signal 2's values are still remembered
    obs["query"][0] = 7.0
    memory.observe(obs)
    assert np.allclose(memory.values[0, :, 2], np.log1p(np.arange(S)))
    assert np.allclose(memory.values[0, :, 5], np.log1p(7.0))
    assert memory.values[1:].sum() == 0.0 and memory.looked[0, [2, 5]].tolist() == [1.0, 1.0]
    assert memory.looked[0].sum() == 2.0 and memory.looked[1:].sum() == 0.0
    # a node's drain counts against every component with replicas on it; a restart against its one component
    node = next(i for i, k in enumerate(context.kinds) if k == "node" and structure.relation[i].any())
    drain, restart = VERBS.index("drain_node"), VERBS.index("restart")
    memory.acted(np.array([1, 3]), np.array([[drain, node, 0], [restart, 0, 0]]))
    memory.acted(np.array([3]), np.array([[restart, 0, 0]]))
    assert np.allclose(np.expm1(memory.done[1, :, drain]), structure.relation[node])
    assert np.expm1(memory.done[3, 0, restart]) == pytest.approx(2.0) and memory.done[3, 1:, restart].sum() == 0
    assert np.expm1(memory.verbs[3, restart]) == pytest.approx(2.0) and memory.verbs[[0, 2]].sum() == 0


def test_the_cost_of_a_tick_is_its_unsafe_actions_and_the_penalty_lowers_their_advantage():
    config = TrainConfig(**{**TINY, "imitate": "none"}, out="unused")
    model = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden)
    rollout = collect(model.state_dict(), config, 0, 0, teacher="random")
    per_world = rollout.costs.sum(axis=0)
    charged = priced(config)          # the rules of an action taken, less the unpriced (a page with nothing wrong)
    assert "paged_with_nothing_wrong" not in charged and "rolled_back_healthy_change" in charged
    assert "no_page_beyond_runbook" not in charged          # what is left undone no price can push the policy off
    assert per_world.tolist() == [float(sum(u["rule"] in charged for u in r["unsafe"])) for r in rollout.reports]
    assert per_world.sum() > 0
    plain, charged = rollout.tensors(1.0, 0.99, 0.95), rollout.tensors(1.0, 0.99, 0.95, penalty=100.0)
    assert (charged["advantages"] <= plain["advantages"] + 1e-4).all()
    assert (charged["advantages"] < plain["advantages"] - 1.0).any()


def test_imitation_weighs_the_teachers_decisions_to_act():
    # one update of behaviour cloning from the same start: weighting the teacher's non-wait decisions raises their
    # log-likelihood more than the plain loss does (a responder mostly waits; its few acts decide the episode)
    config = TrainConfig(**TINY, out="unused")
    torch.manual_seed(0)
    start = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden).state_dict()
    rollout = collect(start, config, 0, 0, teacher="heuristic-sre")
    acts = rollout.actions[:, 0] != VERBS.index("wait")
    assert acts.any() and not acts.all()

    def after(weight: float) -> float:
        model = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden)
        model.load_state_dict(start)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        t = rollout.tensors(1.0, config.gamma, config.gae_lambda)
        _update(model, optimizer, [t], replace(config, imitate_weight=weight), 0, imitating=True)
        with torch.no_grad():
            _, logp, _, _ = model(t["services"], t["world"], t["structure"], actions=t["actions"])
        return float(logp[torch.from_numpy(acts)].mean())

    assert after(10.0) > after(1.0)


def test_the_copy_acts_as_often_as_its_teacher_whatever_the_weight_on_what_it_does():
    # a teacher that waits in 80% of one situation's decisions and acts in 20%: the copy's chance of waiting
    # converges to 0.8 with the choice among acts weighted 1 or 10 (weighting the whole likelihood of acting would
    # drive it to 0.8 / (0.8 + 10 x 0.2) = 0.29: a copy that acts far more often than its teacher)
    wait, act = VERBS.index("wait"), VERBS.index("restart")
    actions = torch.zeros((10, 3), dtype=torch.long)
    actions[:2, 0] = act

    def converged(weight: float) -> float:
        logits = torch.zeros(len(VERBS), requires_grad=True)
        optimizer = torch.optim.Adam([logits], lr=0.05)
        rest = [torch.zeros((10, 1)), torch.zeros((10, 1))]           # one target, one argument: certain
        for _ in range(2000):
            optimizer.zero_grad()
            _imitation_loss([torch.log_softmax(logits, 0).expand(10, -1), *rest], actions, weight).backward()
            optimizer.step()
        return float(torch.softmax(logits.detach(), 0)[wait])

    assert converged(1.0) == pytest.approx(0.8, abs=0.01)
    assert converged(10.0) == pytest.approx(0.8, abs=0.01)


def test_the_anchor_holds_the_policy_near_its_copy_of_the_teacher():
    config = TrainConfig(**{**TINY, "imitate": "none"}, out="unused")
    torch.manual_seed(0)
    start = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden)
    rollout = collect(start.state_dict(), config, 0, 0)
    t = rollout.tensors(1.0, config.gamma, config.gae_lambda, penalty=100.0)

    def drift(anchor: float) -> float:
        model = ServicePolicy(len(VERBS), ARGUMENTS, config.hidden)
        model.load_state_dict(start.state_dict())
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(3):
            _update(model, optimizer, [t], replace(config, anchor=anchor), 0, anchor=start)
        with torch.no_grad():
            return float(_divergence(start.log_probs(t["services"], t["world"], t["structure"], t["actions"]),
                                     model.log_probs(t["services"], t["world"], t["structure"], t["actions"])))

    assert drift(0.0) > 2.0 * drift(20.0) > 0.0


def _advised_episode(agent, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(actions [T, N, 3] of the free responders (others 0), rewards [N]) of one episode on faults that call for
    rollbacks, restarts, failovers and pages."""
    from opsworld.envs.generator import CatalogueGenerator
    from opsworld.spec import load_scenario
    entries = ("bad_config_push", "db_connection_limit", "memory_creep", "node_failure")
    scenario, rng = load_scenario("online-shop"), np.random.default_rng(seed)
    draws = [CatalogueGenerator(entries=[e], onset=(60.0, 120.0)).draw(scenario, rng) for e in entries]
    env = IncidentVectorEnv(num_envs=len(entries), scenario="online-shop", horizon=1800.0)
    obs, _ = env.reset(seed=seed, options={"draws": draws})
    agent.reset(context_of(env), seed)
    taken, total = [], np.zeros(len(entries))
    while True:
        a = np.asarray(agent.act_batch(obs), dtype=np.int64)
        taken.append(np.where((obs["clock"][:, 1] < 0.5)[:, None], a, 0))
        obs, reward, terminated, _, _ = env.step(a)
        total += reward
        if terminated.all():
            return np.stack(taken), total


def test_an_advised_policy_acts_as_its_advisor_where_it_trusts_it(tmp_path):
    # the advice reaches all three choices, fed every tick: with a trust far above the network's own logits the
    # policy takes the advisor's every action; with none, the same network does not
    from opsworld.agents import load_agent
    from opsworld.train.agent import save_policy
    torch.manual_seed(0)
    model = ServicePolicy(len(VERBS), ARGUMENTS, 16, advice=True)
    with pytest.raises(ValueError, match="pass advice"):
        model.trunk(torch.zeros(1, 3, 97), torch.zeros(1, 5), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    about = {"config": {"advisor": "heuristic-sre"}}
    with torch.no_grad():
        model.trust.fill_(100.0)
    save_policy(tmp_path / "trusting.pt", model, about)
    with torch.no_grad():
        model.trust.fill_(0.0)
    save_policy(tmp_path / "deaf.pt", model, about)
    advisor_actions, advisor_rewards = _advised_episode(load_agent("heuristic-sre"))
    assert (advisor_actions[..., 0] != VERBS.index("wait")).sum() >= 8
    agent = PolicyAgent(tmp_path / "trusting.pt")
    assert agent.greedy and agent.advisor is not None      # an advised policy acts greedily unless told to sample
    actions, rewards = _advised_episode(agent)
    assert np.array_equal(actions, advisor_actions) and np.array_equal(rewards, advisor_rewards)
    deaf, _ = _advised_episode(PolicyAgent(tmp_path / "deaf.pt"))
    assert not np.array_equal(deaf, advisor_actions)
    # a file whose network reads advice but names no advisor, or one that does not exist: one clear error each
    save_policy(tmp_path / "nameless.pt", model, {"config": {}})
    with pytest.raises(PolicyError, match="names none"):
        load_policy(tmp_path / "nameless.pt")
    save_policy(tmp_path / "lost.pt", model, {"config": {"advisor": "nobody"}})
    with pytest.raises(PolicyError, match="its advisor cannot be loaded: no agent named 'nobody'"):
        PolicyAgent(tmp_path / "lost.pt")


def test_training_with_an_advisor_counts_how_often_the_policy_follows_it(tmp_path):
    config = TrainConfig(**TINY, total_steps=2 * 6 * 2 * 12, advisor="heuristic-sre", out=str(tmp_path / "run"))
    train(config)
    rows = _rows(tmp_path / "run")
    assert [float(r["charts/imitating"]) for r in rows] == [1.0, 0.0]
    assert float(rows[0]["charts/follows_advice"]) == 1.0           # imitating its advisor, it acts as told
    assert 0.5 < float(rows[1]["charts/follows_advice"]) < 1.0     # drawn: mostly the advice, sometimes not
    model, about = load_policy(tmp_path / "run" / POLICY)
    assert model.advice and about["config"]["advisor"] == "heuristic-sre"
    assert "--advisor heuristic-sre" in about["command"]


def _rows(out: Path) -> list[dict]:
    with (out / METRICS).open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _weights(out: Path) -> dict:
    return torch.load(out / CHECKPOINT, weights_only=False)["model"]


def test_resume_continues_bit_for_bit_and_workers_change_nothing(tmp_path):
    straight = TrainConfig(**TINY, total_steps=3 * 6 * 2 * 12, anchor=1.0, advisor="heuristic-sre",
                           out=str(tmp_path / "straight"))
    train(straight)
    first = replace(straight, out=str(tmp_path / "resumed"), minutes=0.0)      # stops after one iteration
    train(first)
    assert len(_rows(tmp_path / "resumed")) == 1
    train(first, resume=True)       # the first PPO iteration: the copy of the teacher is kept in the checkpoint
    anchor = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=False)["anchor"]
    assert anchor is not None and len(_rows(tmp_path / "resumed")) == 2
    train(replace(first, minutes=None), resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _rows(tmp_path / "straight") == _rows(tmp_path / "resumed")
    rows = _rows(tmp_path / "straight")       # the unsafe price follows the constraint, iteration by iteration
    for before, after in zip(rows, rows[1:]):
        excess = float(before["charts/unsafe_taken_share"]) - straight.unsafe_target
        price = max(0.0, float(before["charts/unsafe_price"]) + straight.unsafe_price_rate * excess)
        assert float(after["charts/unsafe_price"]) == pytest.approx(price)
    two = replace(straight, out=str(tmp_path / "two"), workers=2)
    train(two)
    c = _weights(tmp_path / "two")
    assert all(torch.equal(a[k], c[k]) for k in a)
    # and the run learned something: the weights moved
    fresh = TrainConfig(**TINY, out=str(tmp_path / "none"))
    torch.manual_seed(fresh.seed)
    initial = ServicePolicy(len(VERBS), ARGUMENTS, fresh.hidden, advice=True).state_dict()
    assert any(not torch.equal(initial[k], a[k]) for k in a)
    for name in (POLICY, CURVE):
        assert (tmp_path / "straight" / name).stat().st_size > 0


def test_cli_trains_writes_a_policy_that_runs_as_an_agent(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--worlds", "4", "--topologies", "1", "--services", "5-8",
                                      "--horizon", "60", "--total-steps", "24", "--hidden", "16", "--workers", "1",
                                      "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SPS" in result.output and (out / POLICY).exists()
    model, about = load_policy(out / POLICY)
    assert about["command"].startswith("opsworld train") and "--hidden 16" in about["command"]
    assert about["global_step"] == 24
    # the policy file is an agent: it acts validly in an env it never saw
    agent = agent_factory(str(out / POLICY))()
    env = IncidentVectorEnv(num_envs=3, scenario="online-shop", horizon=60.0)
    obs, _ = env.reset(seed=0)
    agent.reset(context_of(env), 0)
    for _ in range(6):
        a = agent.act_batch(obs)
        assert valid(env._masks, a[:, 0], a[:, 1], a[:, 2]).all()
        obs, *_ = env.step(a)
    # the audit holds a trained policy to beating the cheats, not to losing to the heuristic
    from opsworld.eval.audit import audit
    result = audit(agents=[str(out / POLICY), "page-at-once"], seeds=1, templates=("hotel-reservation",),
                   entries=("db_connection_limit",), silence_agents=())
    checks = {c.name: c for c in result.checks}
    assert str(out / POLICY) not in checks["heuristic beats every other agent"].detail["margins_se"]
    beat = checks["the trained policy beats every cheat"]
    assert beat.detail["closest"] == f"{out / POLICY} over page-at-once" and beat.figure is not None


@pytest.mark.parametrize("args, message", [
    (["--services", "9-3"], "--services must be MIN-MAX"),
    (["--services", "x"], "MIN-MAX"),
    (["--worlds", "0"], "--worlds must be at least 1"),
    (["--resume"], "no checkpoint"),
    (["--imitate", "nobody"], "--imitate: no agent named 'nobody'"),
    (["--advisor", "nobody"], "--advisor: no agent named 'nobody'"),
    (["--unsafe-target", "1.5"], "--unsafe-target must be in [0, 1]"),
    (["--unsafe-price", "-1"], "--unsafe-price and --unsafe-price-rate at least 0"),
])
def test_cli_rejects_bad_options_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, ["train", "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "x" / CHECKPOINT).exists()


def test_command_of_names_only_what_differs_from_the_defaults():
    config = TrainConfig(seed=3, services=(5, 20), anneal_lr=False, minutes=90.0)
    assert command_of(config) == "opsworld train --seed 3 --minutes 90.0 --services 5-20 --no-anneal-lr"
    assert command_of(TrainConfig(unpriced="")) == 'opsworld train --unpriced ""'


def test_a_bad_policy_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a policy")
    with pytest.raises(PolicyError, match="not a policy file"):
        PolicyAgent(bad)
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "missing.pt")
    # a policy trained on another version's features: says so, not a tensor size mismatch
    from opsworld.train.agent import save_policy
    older = ServicePolicy(len(VERBS), ARGUMENTS, 8)
    older.encode[0] = torch.nn.Linear(older.encode[0].in_features - 2, 8)
    save_policy(tmp_path / "older.pt", older, {})
    with pytest.raises(PolicyError, match="trained on features of another opsworld"):
        load_policy(tmp_path / "older.pt")


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped policy yet")
def test_the_shipped_policy_is_a_registered_agent():
    assert "ppo" in AGENTS
    agent = AGENTS["ppo"]()
    assert "seed" in agent.about["config"] and agent.about["command"].startswith("opsworld train")
