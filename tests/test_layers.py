"""The package's imports run down the layers of DESIGN.md, and no two packages import each other (imports inside
functions and under TYPE_CHECKING count too: the test reads the source, not what happens to be imported)."""

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
    assert {(a, b) for a, b in _arrows() if _level(b) > _level(a)} == set()


def test_no_two_packages_import_each_other() -> None:
    arrows = _arrows()
    assert {tuple(sorted((a, b))) for a, b in arrows if (b, a) in arrows} == set()
