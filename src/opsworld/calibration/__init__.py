"""Calibration of opsworld's fault signatures against real telemetry."""

from opsworld.calibration.nezha import (Calibration, CalibrationError, Check, Dropped, InjectionChecks,
                                        calibrate)
from opsworld.calibration.systems import SYSTEMS, System

__all__ = ["Calibration", "CalibrationError", "Check", "Dropped", "InjectionChecks", "SYSTEMS", "System", "calibrate"]
