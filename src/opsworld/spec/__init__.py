"""Scenario files: the schema, units, loader and built-in templates."""

from opsworld.spec.loader import ScenarioError, load_scenario, service_map, template_path, templates
from opsworld.spec.schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "service_map", "template_path", "templates"]
