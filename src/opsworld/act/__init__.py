"""Runbook actions: their time cost and their effect, executed through the engine's knobs."""

from opsworld.act.mitigations import MITIGATIONS, Mitigation, MitigationError, mitigate

__all__ = ["MITIGATIONS", "Mitigation", "MitigationError", "mitigate"]
