"""Episodes recorded before a refactor: the same seeds and actions must give the same episode after it.

Each case runs a short episode through one front end (the vector env with random valid actions, the heuristic
responder on audit episodes, the text tools) and hashes everything an agent or the score sees. Floats are rounded to
6 decimals before hashing, so a last-bit difference in a vectorised math routine on another CPU does not count; any
change in behaviour does. When an intended change moves these, re-record them with
`python tests/test_recorded_episodes.py` and say why in the commit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

ERRORS = 'sum by (service) (rate(http_server_requests_total{code=~"5.."}[5m]))'

RECORDED = {
    "vector_env": "d12db3e054b7d2bf",
    "heuristic": "1090526e39b80dbd",
    "tools": "796f6ae36562bf52",
}


def _update(h, value) -> None:
    if isinstance(value, dict):
        for key in sorted(value):
            h.update(str(key).encode())
            _update(h, value[key])
    elif isinstance(value, (list, tuple)):
        for v in value:
            _update(h, v)
    elif isinstance(value, np.ndarray) and value.dtype.kind == "f":
        h.update(np.round(value.astype(np.float64), 6).tobytes())
    elif isinstance(value, np.ndarray):
        h.update(value.tobytes())
    elif isinstance(value, float):
        h.update(repr(round(value, 6)).encode())
    else:
        h.update(repr(value).encode())


def _digest(*values) -> str:
    h = hashlib.sha256()
    for v in values:
        _update(h, v)
    return h.hexdigest()[:16]


def vector_env() -> str:
    """Random valid actions in 8 worlds of the default scenario, 20 minutes."""
    from opsworld.envs.gym_env import IncidentVectorEnv
    from opsworld.act.vocabulary import sample_actions
    env = IncidentVectorEnv(num_envs=8, seed=11, horizon=1200.0, onset=(120.0, 300.0))
    obs, info = env.reset(seed=11)
    rng = np.random.default_rng(3)
    seen = [obs]
    while True:
        obs, reward, terminated, _, info = env.step(sample_actions(info["action_mask"], rng, 8))
        seen += [obs, reward]
        if terminated.all():
            return _digest(seen, [json.dumps(t, sort_keys=True, default=str) for t in info["truth"]])


def heuristic() -> str:
    """The heuristic responder on the audit's first seed of two templates (healthy changes around each incident)."""
    from opsworld.agents import agent_factory
    from opsworld.eval.audit import run_agent, suite
    out = []
    for template, episodes in suite(seeds=1, templates=("online-shop", "social-network")).items():
        run = run_agent(agent_factory("heuristic-sre"), template, episodes)
        out += [run.actions, run.rewards, [json.dumps(r, sort_keys=True, default=str) for r in run.reports]]
    return _digest(out)


def tools() -> str:
    """A fixed sequence of text-tool calls on a bad deploy: every text shown, and the score."""
    from opsworld.envs.tools import ToolSession
    s = ToolSession("online-shop", seed=4, fault="bad_deploy_errors", horizon=2400)
    texts = [s.pages_text()]
    for name, args in [("list_alerts", {}), ("query_metrics", {"promql": ERRORS}),
                       ("list_changes", {}), ("read_logs", {"service": "frontend", "range": "10m"}),
                       ("get_traces", {"service": "frontend"}), ("wait", {"duration": "5m"}),
                       ("rollback_deploy", {"service": "checkoutservice"}),
                       ("rollback_deploy", {"service": "currencyservice"}), ("wait", {"duration": "10m"}),
                       ("submit", {"components": ["checkoutservice"], "fault_class": "error_rate"})]:
        texts.append(s.call(name, args).text)
    return _digest(texts)


CASES = {"vector_env": vector_env, "heuristic": heuristic, "tools": tools}


@pytest.mark.parametrize("case", sorted(CASES))
def test_episode_is_as_recorded(case: str) -> None:
    assert CASES[case]() == RECORDED[case]


if __name__ == "__main__":
    for name, case in CASES.items():
        print(f'    "{name}": "{case()}",')
