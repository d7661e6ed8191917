"""The one error type of the PromQL engine."""

from __future__ import annotations


class PromQLError(ValueError):
    """A query that cannot be parsed, uses something this engine does not support, or fails at evaluation the way
    Prometheus would fail it (many-to-many matching, duplicate label sets). The message is one line naming the
    offending part."""
