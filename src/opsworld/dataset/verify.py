"""The verifier: `verify(item, answer)` scores what a model answered to an item, in [0, 1].

1.0 is the ground truth; anything else scores less (partial credit as `tasks` explains: near the root cause, a mask,
a fault acting beside the root cause). `item` is a row as read back from the Parquet files (a dict, as pyarrow's
`to_pylist` or the `datasets` library gives it); only its `grading` field is read. `answer` is what a model wrote:
a bare name (case, spaces, quotes and a trailing full stop do not matter), a letter for `mitigate`, or a JSON object
such as {"component": "cartservice"}, {"fault_class": "error_rate"} or {"option": "B"} (also inside a ``` fence).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

import numpy as np

# JSON keys a model may put its answer under, per task (the first one present is read)
KEYS = {
    "localize": ("component", "components", "root_cause", "root_causes", "answer", "name", "place"),
    "classify": ("fault_class", "class", "failure_mode", "kind", "answer", "name"),
    "mitigate": ("option", "letter", "choice", "answer", "action"),
}
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.S)
_PREFIX = re.compile(r"^(final answer|answer)\s*[:=-]\s*", re.I)
_LETTER = re.compile(r"^(?:option\s*)?\(?([a-h])\)?[.):]?$", re.I)


def verify(item: Mapping[str, Any], answer: Any) -> float:
    """Score `answer` to `item` in [0, 1]: 1.0 for the ground truth, less for anything else, 0.0 for an answer that
    cannot be read."""
    grading = item["grading"]
    if isinstance(grading, str):
        grading = json.loads(grading)
    task = grading["task"]
    given = _given(answer, KEYS[task])
    if given is None:
        return 0.0
    if task == "localize":
        return _localize(grading, given)
    if task == "classify":
        scores = {_name(k): v for k, v in grading["scores"].items()}
        return float(scores.get(_name(given), 0.0))
    if task == "mitigate":
        return _mitigate(grading, given, answer)
    raise ValueError(f"unknown task {task!r} in the item's grading")


def _given(answer: Any, keys: tuple[str, ...]) -> str | None:
    """The answer as one string: a JSON object's field (lists joined by commas), or the text itself."""
    if isinstance(answer, Mapping):
        data: Any = answer
    else:
        text = str(answer).strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
        data = text
        if text.startswith("{") or text.startswith('"'):
            try:
                data = json.loads(text)
            except ValueError:
                data = text
    if isinstance(data, Mapping):
        for k in keys:
            if k in data and data[k] is not None:
                data = data[k]
                break
        else:
            return None
    if isinstance(data, (list, tuple)):
        return ", ".join(str(x) for x in data)
    return _PREFIX.sub("", str(data).strip())


def _clean(text: str) -> str:
    """Lower case, single spaces, no quotes or trailing full stop around it."""
    text = re.sub(r"\s+", " ", text.strip().lower())
    return text.strip(" \"'`*").rstrip(".").strip(" \"'`*")


def _name(text: str) -> str:
    """A failure mode's name as written in the list: `No Fault`, `no-fault` and `no_fault` are the same."""
    return re.sub(r"[\s-]+", "_", _clean(text))


def _localize(grading: dict, given: str) -> float:
    """The reward's localisation score (`score.reward.localisation`) with its partial credit read from the item:
    per root, the best credit among the named places; averaged over roots; less a share for wrong names when more
    than one is named."""
    named = list(dict.fromkeys(n for n in (_clean(p) for p in re.split(r"[,;\n]", given)) if n))
    if not named:
        return 0.0
    roots = [_clean(r) for r in grading["roots"]]
    scores = []
    for root, raw in zip(roots, grading["roots"]):
        credit = {_clean(p): c for p, c in grading["near"].get(raw, {}).items()}
        scores.append(1.0 if root in named else max((credit.get(n, 0.0) for n in named), default=0.0))
    wrong = sum(1 for n in named if n not in roots) / len(named)
    return float(np.mean(scores) * (1.0 - 0.5 * wrong * (len(named) > 1)))


def _mitigate(grading: dict, given: str, raw: Any) -> float:
    options = grading["options"]
    letter = _LETTER.match(_clean(given))
    if letter:
        label = letter.group(1).upper()
        return float(next((o["score"] for o in options if o["label"] == label), 0.0))
    # a JSON object naming the action and its target
    if isinstance(raw, Mapping) or str(raw).strip().startswith(("{", "```")):
        data = raw if isinstance(raw, Mapping) else _json(str(raw))
        if isinstance(data, Mapping) and "action" in data:
            given = f"{data['action']} {data.get('target') or ''}"
    # the option's text: `rollback_deploy cartservice`, `rollback_deploy(cartservice)`, `A) rollback_deploy ...`
    text = _words(re.sub(r"^\(?[a-h]\)\s*", "", _clean(given)).split(":")[0])
    return float(next((o["score"] for o in options if _words(o["text"]) == text), 0.0))


def _json(text: str) -> Any:
    fenced = _FENCE.match(text.strip())
    try:
        return json.loads(fenced.group(1) if fenced else text)
    except ValueError:
        return None


def _words(text: str) -> str:
    return " ".join(re.sub(r"[()\[\],]", " ", text.lower()).split())
