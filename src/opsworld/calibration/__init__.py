"""Calibration of opsworld's fault signatures against real telemetry."""

from opsworld.calibration.nezha import Calibration, CalibrationError, Check, calibrate

__all__ = ["Calibration", "CalibrationError", "Check", "calibrate"]
