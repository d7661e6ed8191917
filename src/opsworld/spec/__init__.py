"""Scenario files: the schema, units, loader and built-in templates."""

from opsworld.spec.loader import ScenarioError, load_scenario, template_path, templates
from opsworld.spec.schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "template_path", "templates"]
