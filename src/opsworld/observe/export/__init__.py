"""Exporters: telemetry written out in formats that real tools read (OpenMetrics for promtool/Prometheus)."""

from .openmetrics import write_openmetrics

__all__ = ["write_openmetrics"]
