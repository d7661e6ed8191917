"""Recorded distributed traces: readers of OTLP, Jaeger, Zipkin and Nezha trace files into one table of spans, and
the scenario measured from them (`opsworld import traces`)."""

from opsworld.spec.traces.build import TraceModel, build
from opsworld.spec.traces.readers import TraceFormatError, read_spans, service_of_pod
from opsworld.spec.traces.spans import Spans

__all__ = ["Spans", "TraceFormatError", "TraceModel", "build", "read_spans", "service_of_pod"]
