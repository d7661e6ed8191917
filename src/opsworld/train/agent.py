"""A trained policy as an agent (`opsworld eval --agent ppo`, or `--agent PATH.pt` for one of your own), and the
policy file it reads: the network's weights and what made them (config, seed, command, final metrics)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from opsworld.agents.base import Context
from opsworld.train.features import Memory, decisions, global_features, service_features, structure_of
from opsworld.train.policy import ServicePolicy, TorchStructure

SHIPPED = Path(__file__).parent / "weights" / "ppo.pt"      # the policy that ships with the package


class PolicyError(ValueError):
    """A policy file that cannot be read."""


def save_policy(path: str | Path, model: ServicePolicy, about: dict) -> None:
    """Write a policy file: the weights, the network's shape and `about` (config, seed, command, metrics)."""
    torch.save({"weights": model.state_dict(), "shape": {"verbs": model.verbs, "arguments": model.arguments,
                                                         "hidden": model.hidden, "advice": model.advice},
                "about": about}, path)


def load_policy(path: str | Path = SHIPPED) -> tuple[ServicePolicy, dict]:
    """(the network, what made it) from a policy file."""
    path = Path(path)
    try:
        state = torch.load(path, weights_only=False, map_location="cpu")
        model = ServicePolicy(**state["shape"])
        read = state["weights"]["encode.0.weight"].shape[1], state["weights"]["context.0.weight"].shape[1]
        wanted = model.encode[0].weight.shape[1], model.context[0].weight.shape[1]
        if read != wanted:
            raise PolicyError(f"{path}: trained on features of another opsworld ({read[0]} per component, this one "
                              f"reads {wanted[0]}); retrain it with `opsworld train`")
        model.load_state_dict(state["weights"])
        if model.advice and advisor_of(state.get("about", {})) == "none":
            raise PolicyError(f"{path}: the policy reads an advisor's actions but the file names none "
                              "(about.config.advisor)")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such policy file (train one with `opsworld train`)") from None
    except (KeyError, RuntimeError, TypeError, EOFError, pickle.UnpicklingError) as exc:
        raise PolicyError(f"{path}: not a policy file written by `opsworld train` ({exc})") from None
    model.eval()
    return model, state.get("about", {})


def advisor_of(about: dict) -> str:
    """The agent a policy reads the advice of ('none' for a policy without one)."""
    return str(about.get("config", {}).get("advisor", "none"))


class PolicyAgent:
    """The trained network acting for every world at once, remembering what each world's responder has seen and
    done this episode (`features.Memory`, as in training). It samples its actions, as in training (seeded by
    `reset`), or with `greedy=True` takes the most likely one. Call `act_batch` every tick with the whole batch:
    only the worlds whose responder is free are given a drawn action (the others get `wait`, which the env
    ignores).

    A policy trained with an advisor runs it beside itself, fed every tick, as in training, and by default acts
    greedily: its draws were exploration around the advice, and a responder that departs from its runbook at random
    one decision in a hundred pages or rolls back for no reason a few times an episode."""

    def __init__(self, path: str | Path = SHIPPED, greedy: bool | None = None) -> None:
        self.model, self.about = load_policy(path)
        self.greedy = self.model.advice if greedy is None else greedy
        self.advisor = None
        if self.model.advice:
            from opsworld.agents import AgentError, load_agent
            try:
                self.advisor = load_agent(advisor_of(self.about))
            except AgentError as exc:
                raise PolicyError(f"{path}: its advisor cannot be loaded: {exc}") from None
        # small batches of one world's observations: one thread is fastest, and rollout workers (one per core)
        # would otherwise oversubscribe the cores
        torch.set_num_threads(1)
        self.generator: torch.Generator | None = None

    def reset(self, context: Context, seed: int = 0) -> None:
        self.structure = structure_of(context)
        self.torch_structure = TorchStructure(self.structure)
        self.generator = None if self.greedy else torch.Generator().manual_seed(int(seed))
        self.memory: Memory | None = None       # sized by the first batch of the episode
        if self.advisor is not None:
            self.advisor.reset(context, seed)

    def act_batch(self, observations: dict[str, np.ndarray]) -> np.ndarray:
        W = len(observations["clock"])
        if self.memory is None:
            self.memory = Memory(W, self.structure)
        self.memory.observe(observations)
        asked = np.flatnonzero(decisions(observations))
        actions = np.zeros((W, 3), np.int64)
        advice = self.advisor.act_batch(observations)[asked] if self.advisor is not None else None   # every tick
        if len(asked):
            s = torch.from_numpy(service_features(observations, self.structure, self.memory, asked))
            g = torch.from_numpy(global_features(observations, self.memory, asked))
            with torch.no_grad():
                actions[asked] = self.model(s, g, self.torch_structure, generator=self.generator,
                                            advice=None if advice is None else torch.from_numpy(advice))[0].numpy()
            self.memory.acted(asked, actions[asked])
        return actions

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.act_batch({k: np.asarray(v)[None] for k, v in observation.items()})[0]
