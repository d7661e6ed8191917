"""The policy network: one set of weights for any topology.

Each component is encoded on its own from its features (`features.service_features`); the encodings are pooled
(mean and max) with the global features into a context vector, which gives the value and the verb. A place (target)
is scored from the encodings of the components it stands for (`Structure.relation`) plus its kind, against a query
made of the context and the chosen verb; the argument is chosen from the context, the verb and the chosen target.
So the action is drawn verb -> target -> argument, each masked by what the env accepts after the choices before it.

With `advice`, the network also reads an advisor's proposed action for the same decision (residual learning over a
scripted responder): its verb and argument join the global features, the proposed place gets a learnt vector added
to its encoding, and each choice's logits get a learnt bonus (`trust`, one per choice) on the advised option. So the
untrained policy already follows the advice most of the time, and training learns where to depart from it.
"""

from __future__ import annotations

import torch
from torch import nn

from opsworld.train.features import GLOBAL_FEATURES, PLACE_KINDS, SERVICE_FEATURES

_NEG = -1e9          # the logit of a masked choice (finite: a softmax over all-masked rows stays defined)
TRUST = 5.0          # the advised option's starting logit bonus: followed ~4 times in 5 among ~30 verbs


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class ServicePolicy(nn.Module):
    """Actor-critic over a variable set of components. Shapes: B worlds, S components, T places, V verbs, G
    arguments, H hidden."""

    def __init__(self, verbs: int, arguments: int, hidden: int = 64, advice: bool = False) -> None:
        super().__init__()
        H = hidden
        self.verbs, self.arguments, self.hidden, self.advice = verbs, arguments, hidden, advice
        self.encode = _mlp([SERVICE_FEATURES, H, H])
        self.context = _mlp([GLOBAL_FEATURES + (verbs + arguments if advice else 0) + 2 * H, H, H])
        if advice:
            self.advised_place = nn.Parameter(torch.zeros(H))
            self.trust = nn.Parameter(torch.full((3,), TRUST))     # verb, target, argument
        self.verb_head = nn.Linear(H, verbs)
        self.verb_embedding = nn.Embedding(verbs, H)
        self.kind_embedding = nn.Embedding(len(PLACE_KINDS), H)
        self.place = nn.Linear(H, H)
        self.query = nn.Linear(2 * H, H)
        self.argument_head = nn.Sequential(nn.Linear(3 * H, H), nn.ReLU(), nn.Linear(H, arguments))
        self.value_head = nn.Sequential(nn.Linear(H, H), nn.ReLU(), nn.Linear(H, 1))
        for head in (self.verb_head, self.argument_head[-1]):      # near-uniform first choices, as CleanRL does
            nn.init.orthogonal_(head.weight, 0.01)
            nn.init.zeros_(head.bias)

    def trunk(self, services: torch.Tensor, world: torch.Tensor, relation: torch.Tensor, place_kind: torch.Tensor,
              advice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """services [B, S, F_s], world [B, F_g], relation [T, S], place_kind [T], advice [B, 3] (the advisor's
        actions, for a network made with `advice`) -> context [B, H], places [B, T, H]."""
        if self.advice:
            if advice is None:
                raise ValueError("this policy reads an advisor's actions: pass advice [B, 3]")
            world = torch.cat([world, nn.functional.one_hot(advice[:, 0], self.verbs).to(world.dtype),
                               nn.functional.one_hot(advice[:, 2], self.arguments).to(world.dtype)], dim=1)
        e = self.encode(services)                                            # [B, S, H]
        pooled = torch.cat([e.mean(dim=1), e.amax(dim=1)], dim=1)           # [B, 2H]
        context = self.context(torch.cat([world, pooled], dim=1))          # [B, H]
        places = self.place(torch.matmul(relation, e)) + self.kind_embedding(place_kind)   # [B, T, H]
        if self.advice:
            advised = torch.arange(places.shape[1])[None, :] == advice[:, 1:2]            # [B, T]
            places = places + advised[:, :, None].to(places.dtype) * self.advised_place
        return context, places

    def heads(self, context: torch.Tensor, places: torch.Tensor, masks: tuple[torch.Tensor, ...],
              actions: torch.Tensor | None = None, generator: torch.Generator | None = None,
              advice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw actions (or score the given ones [B, 3]): (actions [B, 3], log-prob [B], entropy [B], value [B])."""
        chosen, log_probs = self.choices(context, places, masks, actions, generator, advice)
        logp, entropy = scored(log_probs, chosen)
        value = self.value_head(context)[:, 0]
        return chosen, logp, entropy, value

    def choices(self, context: torch.Tensor, places: torch.Tensor, masks: tuple[torch.Tensor, ...],
                actions: torch.Tensor | None = None, generator: torch.Generator | None = None,
                advice: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The actions [B, 3] (drawn, or the given ones) and the three choices' log-probabilities under the masks:
        verb [B, V], target given the verb [B, T], argument given both [B, G] (each with the `trust` bonus on the
        advised option, where the choices before it followed the advice)."""
        verb_mask, target_mask, argument_mask = masks                     # [V], [V, T], [V, G] bool
        B = context.shape[0]
        bonus = self._bonus(advice, places.shape[1])
        verb_logits = (self.verb_head(context) + bonus(0, None)).masked_fill(~verb_mask, _NEG)
        verb = _choose(verb_logits, actions, 0, generator)
        v = self.verb_embedding(verb)                                      # [B, H]
        q = self.query(torch.cat([context, v], dim=1))                     # [B, H]
        target_logits = torch.einsum("bth,bh->bt", places, q) / self.hidden ** 0.5 + bonus(1, [verb])
        target_logits = target_logits.masked_fill(~target_mask[verb], _NEG)
        target = _choose(target_logits, actions, 1, generator)
        chosen = places[torch.arange(B), target]                           # [B, H]
        argument_logits = self.argument_head(torch.cat([context, v, chosen], dim=1)) + bonus(2, [verb, target])
        argument_logits = argument_logits.masked_fill(~argument_mask[verb], _NEG)
        argument = _choose(argument_logits, actions, 2, generator)
        log_probs = [torch.log_softmax(x, dim=1) for x in (verb_logits, target_logits, argument_logits)]
        return torch.stack([verb, target, argument], dim=1), log_probs

    def _bonus(self, advice: torch.Tensor | None, T: int):
        """bonus(i, before) -> the logit bonus [B, n] of choice i (0 verb, 1 target, 2 argument): `trust[i]` on the
        advised option where the choices `before` ([B] each) were the advised ones; 0 without advice."""
        if not self.advice:
            return lambda i, before: 0.0
        sizes = (self.verbs, T, self.arguments)

        def bonus(i: int, before: list[torch.Tensor] | None) -> torch.Tensor:
            on = nn.functional.one_hot(advice[:, i], sizes[i]).to(self.trust.dtype)
            for j, chosen in enumerate(before or []):
                on = on * (chosen == advice[:, j]).to(on.dtype)[:, None]
            return self.trust[i] * on
        return bonus

    def forward(self, services: torch.Tensor, world: torch.Tensor, structure: "TorchStructure",
                actions: torch.Tensor | None = None, generator: torch.Generator | None = None,
                advice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        context, places = self.trunk(services, world, structure.relation, structure.place_kind, advice)
        return self.heads(context, places, structure.masks, actions, generator, advice)

    def log_probs(self, services: torch.Tensor, world: torch.Tensor, structure: "TorchStructure",
                  actions: torch.Tensor, advice: torch.Tensor | None = None) -> list[torch.Tensor]:
        """For the given actions [B, 3], the log-probabilities of every verb, of every target given the action's
        verb and of every argument given its verb and target (`choices`)."""
        context, places = self.trunk(services, world, structure.relation, structure.place_kind, advice)
        return self.choices(context, places, structure.masks, actions, advice=advice)[1]

    def value(self, services: torch.Tensor, world: torch.Tensor, structure: "TorchStructure",
              advice: torch.Tensor | None = None) -> torch.Tensor:
        context, _ = self.trunk(services, world, structure.relation, structure.place_kind, advice)
        return self.value_head(context)[:, 0]


def scored(log_probs: list[torch.Tensor], actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The actions' [B, 3] log-probability [B] and the entropy [B] of the three choices (`ServicePolicy.choices`)."""
    logp = sum(lp.gather(1, actions[:, i, None])[:, 0] for i, lp in enumerate(log_probs))
    entropy = sum(-(lp.exp() * lp).sum(dim=1) for lp in log_probs)
    return logp, entropy


class TorchStructure:
    """A `features.Structure` as tensors."""

    def __init__(self, structure) -> None:
        self.relation = torch.from_numpy(structure.relation)
        self.place_kind = torch.from_numpy(structure.place_kind)
        self.masks = (torch.from_numpy(structure.verb_mask), torch.from_numpy(structure.target_mask),
                      torch.from_numpy(structure.argument_mask))


def _choose(logits: torch.Tensor, actions: torch.Tensor | None, column: int,
            generator: torch.Generator | None) -> torch.Tensor:
    """The given actions' column, or a draw from the logits (Gumbel-max: one uniform per choice from `generator`,
    so a draw depends on the generator's state alone); greedy (argmax) without a generator."""
    if actions is not None:
        return actions[:, column]
    if generator is None:
        return logits.argmax(dim=1)
    u = torch.rand(logits.shape, generator=generator).clamp_(1e-20, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(dim=1)
