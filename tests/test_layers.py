"""The package's imports run down the layers of DESIGN.md, and no two packages import each other.

`KNOWN` lists the upward arrows not yet removed (issue 17's work in progress): the test fails on any new one, and on
a listed one that is gone (so the list stays exact and only shrinks)."""

from __future__ import annotations

import ast
from pathlib import Path

import opsworld

ROOT = Path(opsworld.__file__).parent
LAYERS = (            # lowest first; a package may import its own layer's packages or lower ones
    {"spec"}, {"engine"}, {"faults"}, {"observe"}, {"act"}, {"score"}, {"envs"}, {"agents"},
    {"rollout", "train", "dataset", "calibration", "reference", "eval"},
    {"bench", "plot", "summary", "cli", "__main__", "__init__"},
)
KNOWN = {("score", "envs")}


def _level(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def _arrows() -> set[tuple[str, str]]:
    """(importing package, imported package) for every import of one opsworld package by another."""
    out = set()
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                parts = name.split(".")
                if parts[0] == "opsworld" and len(parts) > 1 and parts[1] != package:
                    out.add((package, parts[1]))
    return out


def test_every_package_has_a_layer() -> None:
    packages = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in ROOT.rglob("*.py")}
    assert not [p for p in packages if not any(p in layer for layer in LAYERS)]


def test_imports_run_down_the_layers() -> None:
    upward = {(a, b) for a, b in _arrows() if _level(b) > _level(a)}
    assert upward - KNOWN == set(), "new imports up the layers"
    assert KNOWN - upward == set(), "gone: remove them from KNOWN"


def test_no_two_packages_import_each_other() -> None:
    arrows = _arrows()
    circles = {tuple(sorted((a, b))) for a, b in arrows if (b, a) in arrows}
    assert circles <= {tuple(sorted(k)) for k in KNOWN if k[::-1] in arrows}
