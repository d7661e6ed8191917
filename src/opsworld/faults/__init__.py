"""The fault injector: fault types that act through the engine's knobs, their catalogue, and the ground truth."""

from opsworld.faults.base import Effect, Fault, FaultError
from opsworld.faults.catalogue import (CATALOGUE, FAULT_TYPES, Entry, Example, entry, fault_from,
                                     scenario_for)
from opsworld.faults.ground_truth import GroundTruth, ground_truth, impaired_share
from opsworld.faults.injector import Injector

__all__ = ["CATALOGUE", "FAULT_TYPES", "Effect", "Entry", "Example", "Fault", "FaultError", "GroundTruth",
           "Injector", "entry", "fault_from", "ground_truth", "impaired_share", "scenario_for"]
