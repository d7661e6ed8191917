"""One world's metric samples as OpenMetrics text, the input of `promtool tsdb create-blocks-from openmetrics`.

Layout, per family (in catalogue order; series without a family get `# TYPE <name> unknown`):

    # TYPE http_server_requests counter          <- the family's base name, as OpenMetrics wants it
    # HELP http_server_requests Requests served.
    http_server_requests_total{code="200",pod="a"} 17.0 1700000010.000
    ...

Counter samples carry the store's series name (`<family>_total`), histograms `_bucket{le=...}`, `_sum` and
`_count`, summaries `_sum`/`_count` (and quantile series named after the family). promtool 2.42 accepts the
`_total`-suffixed samples under the base family name (it also accepts a `# TYPE` line naming the sample itself;
the base name is what the OpenMetrics spec asks for). Each series is written in time order with a timestamp in
seconds with exactly three decimals (the store's whole milliseconds). Values are written with `repr(float)` (the
shortest text that reads back to the same float64), ±Inf as `+Inf`/`-Inf`; NaN means "no sample" in the store and
is skipped. The text ends with `# EOF`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

import numpy as np

from ..store import Family, MetricStore

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == np.inf:
        return "+Inf"
    if value == -np.inf:
        return "-Inf"
    return repr(float(value))


def _family_of(name: str, families: dict[str, Family]) -> str | None:
    """The family a series name belongs to: the name itself, or the name less a suffix its type allows."""
    if name in families:
        return name
    for fam_type, suffixes in _SUFFIXES.items():
        for suffix in suffixes:
            base = name[: -len(suffix)]
            if name.endswith(suffix) and base in families and families[base].type == fam_type:
                return base
    return None


def _series_text(labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items() if k != "__name__")
    return f"{labels['__name__']}{{{inner}}}" if inner else labels["__name__"]


def write_openmetrics(store: MetricStore, world: int, out: Path | str | TextIO) -> None:
    """Write world `world` of `store` as OpenMetrics text to a path or an open text stream."""
    if isinstance(out, (str, Path)):
        with open(out, "w", encoding="utf-8") as fh:
            _write(store, world, fh)
    else:
        _write(store, world, out)


def _write(store: MetricStore, world: int, fh: TextIO) -> None:
    ms = np.rint(store.times * 1000.0).astype(np.int64)
    stamps = [f"{t // 1000}.{t % 1000:03d}" for t in ms.tolist()]
    values = store.values[:, world, :]                          # [T, M] view of one world
    members: dict[str, list[int]] = {}
    for i, labels in enumerate(store.labels):
        fam = _family_of(labels["__name__"], store.families)
        members.setdefault(fam if fam is not None else "\0" + labels["__name__"], []).append(i)
    for fam_key, cols in members.items():
        if fam_key.startswith("\0"):
            fh.write(f"# TYPE {fam_key[1:]} unknown\n")
        else:
            family = store.families[fam_key]
            fh.write(f"# TYPE {family.name} {family.type}\n")
            if family.help:
                fh.write(f"# HELP {family.name} {_escape(family.help)}\n")
        for c in cols:
            series = _series_text(store.labels[c])
            column = values[:, c]
            rows = np.flatnonzero(~np.isnan(column))
            fh.writelines(f"{series} {_number(v)} {stamps[r]}\n"
                          for r, v in zip(rows.tolist(), column[rows].tolist()))
    fh.write("# EOF\n")
