"""What a trace is made of: spans with their kinds and statuses, the trace a query returns, and the constants
the trace sensor keys its draws by."""


from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opsworld.observe.logs import templates as tpl


TRACES, SAMPLE = 21, 22           # what a keyed draw is about
OK, ORIGIN, PROPAGATE = 0, 1, 2   # a span's error status: fine, where an error began, passing one on
DOWNSTREAM = "downstream call failed"
SERVER, CLIENT, DB, PRODUCER, CONSUMER = range(5)
SPAN_KIND = {SERVER: "SERVER", CLIENT: "CLIENT", DB: "CLIENT", PRODUCER: "PRODUCER", CONSUMER: "CONSUMER"}
FAST_CAUSES = 10                  # the causes a caller sees at once (refusals, breaker, callee turning it away)
MAX_NODES = 20000                 # a bound on one endpoint's call tree (retries multiply it)
CHUNK_TICKS = 64                  # most ticks simulated together (newest first, starting small)
CELLS = 4_000_000                 # most (span position, request) cells simulated together
PRE_WORK = 0.3                    # share of a handler's own time spent before its first call
MIN_SHARE = 0.05                  # no draw of a duration is shorter than this share of its mean
TINY = 1e-12
M64 = (1 << 64) - 1
DRAWS = 10                        # uniforms drawn per span position (see `calls.Run.draws`)
SPAN_SALT, TEXT_SALT = 0x5DEECE66D1F0A3C7, 0x2545F4914F6CDD1D    # span ids and error texts, apart from draws
DRAW_SALTS = np.array([(d + 1) * 0x9E3779B97F4A7C15 & M64 for d in range(DRAWS)], dtype=np.uint64)


# ---- spans and traces ------------------------------------------------------------------------------------------------

@dataclass
class Span:
    """One span, as OpenTelemetry records it."""

    trace_id: str                  # 32 hex digits
    span_id: str                   # 16 hex digits
    parent_id: str | None
    service: str
    operation: str
    start: float                   # Unix seconds
    duration: float                # seconds
    status: str                    # OK or ERROR
    status_message: str
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)     # [{"name", "time", "attributes"}]
    kind: str = "INTERNAL"         # SERVER, CLIENT, PRODUCER, CONSUMER

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def is_error(self) -> bool:
        return self.status == "ERROR"


@dataclass
class Trace:
    """The spans of one request, parents before children."""

    trace_id: str
    spans: list[Span]

    @property
    def root(self) -> Span:
        return next(s for s in self.spans if s.parent_id is None)

    @property
    def duration(self) -> float:
        """The request's latency: the root span's duration."""
        return self.root.duration

    @property
    def has_error(self) -> bool:
        return any(s.is_error for s in self.spans)

    def children(self, span: Span) -> list[Span]:
        return [s for s in self.spans if s.parent_id == span.span_id]

    def render(self) -> str:
        """A trace viewer's text view: one line per span, indented under its parent, with its offset from the
        start of the trace, its duration and `!` on errors."""
        root = self.root
        lines = [f"trace {self.trace_id}  {tpl.iso(root.start)}  {_ms(self.duration)}  "
                 f"{sum(s.is_error for s in self.spans)} error span(s) of {len(self.spans)}"]

        def walk(span: Span, depth: int) -> None:
            mark = "!" if span.is_error else " "
            note = f"  [{span.status_message}]" if span.is_error else ""
            lines.append(f"{mark} {'  ' * depth}{span.service}: {span.operation} ({span.kind.lower()})  "
                         f"+{_ms(span.start - root.start)}  {_ms(span.duration)}{note}")
            for child in sorted(self.children(span), key=lambda s: s.start):
                walk(child, depth + 1)

        walk(root, 0)
        return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000.0:.1f}ms" if seconds < 10.0 else f"{seconds:.2f}s"
