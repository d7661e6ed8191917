"""Shared fixtures: a minimal valid scenario and a helper that writes YAML files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

MINIMAL_SCENARIO: dict[str, Any] = {
    "name": "shop",
    "nodes": [{"name": "node-1", "zone": "zone-a"}],
    "components": {
        "web": {"service_time": {"mean": "5ms"}, "dependencies": [{"target": "db"}]},
        "db": {"kind": "datastore", "service_time": {"mean": "2ms"}},
    },
    "traffic": {"base_rate": "100/s", "endpoints": [{"name": "GET /", "service": "web"}]},
}


@pytest.fixture(scope="session")
def make_scenario() -> Callable[[], dict[str, Any]]:
    """A factory for fresh copies of a minimal valid scenario dict (session-scoped, so hypothesis may use it)."""
    return lambda: copy.deepcopy(MINIMAL_SCENARIO)


@pytest.fixture
def write_yaml(tmp_path: Path) -> Callable[..., Path]:
    """`write_yaml(data_or_text, name="scenario.yaml")` writes a file under tmp_path and returns its path."""

    def write(content: Any, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write
