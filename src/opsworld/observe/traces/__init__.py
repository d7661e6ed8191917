"""The trace sensor: distributed traces of requests at the entry endpoints, produced lazily when queried.

A request is traced when head sampling keeps it (`Imperfections.trace_sample`, 10% by default): request `i` of
endpoint `p` in tick `k` is kept when a keyed coin flip on (seed, world, k, p, i) says so, and everything about its
trace is drawn from keys of (seed, world, k, p, i, span position), so the same world gives the same traces whatever
was queried before. Its spans follow the real call graph from the endpoint's component: the endpoint's own calls
(`edge_endpoint`) or the component's dependencies, each call made `edge_calls` times (the fraction as a Bernoulli
extra call), parallel calls started together, sequential ones one after another (a handler stops at the first
required call that fails), retries as repeated client spans after their backoff. Durations are drawn around the
truth of the request's tick (each component's own time: its response time less its calls; the network latency of
each edge), and failures from the truth's failure shares of that tick (refusals and their kind, an open breaker, a
callee without replicas or with an expired certificate, rate limits, exhausted connection pools, callees that
hang, answers later than the timeout, errors in the callee's own code).

Instrumentation follows OpenTelemetry: a SERVER span per request a service handles, a CLIENT span per call attempt
(datastores and caches do not trace themselves: their calls are the caller's CLIENT spans), PRODUCER spans for
publishes and a CONSUMER span, child of the publish, for the consumer's processing. A cache lookup that misses is
followed by the caller's own query to the datastore behind it (cache-aside). Attributes use the semantic
conventions (`rpc.*`, `http.*`, `db.*`, `messaging.*`, `server.address`, `peer.service`, `error.type`).

Where an error comes from. The span where an error *originates* has status ERROR, its own status message (what the
failing code or client library said: `dial tcp: lookup shippingservice on 10.96.0.10:53: no such host` on the
caller's CLIENT span for a refused call, the exception on the SERVER span whose code threw) and an `exception`
event (`exception.type`, `exception.message`, and `exception.stacktrace` where the runtime prints one). Spans that
only pass a failure on have status ERROR with the message `downstream call failed` and no exception event. With
retries every failed attempt is an origin of its own. A request refused before its entry service sees it (no replica
in rotation) leaves no trace; nor does one its entry service never answers.

Conventions: times are Unix seconds; results are newest first by the root span's start; `start`/`end` select
requests by their arrival; `min_duration` compares the root span's duration (the request's latency: a consumer's
processing of a published message is asynchronous and may end after the root); `service` matches any span's
service; `operation` matches any span's name. Clock skew shifts each service's span times by its own offset.

Rooms: `spans.py` (spans, traces and the sensor's constants), `calls.py` (an endpoint's call tree and the simulation
of sampled requests through it), `build.py` (simulated rows into OpenTelemetry spans), `query.py` (`query_traces`).
"""

from opsworld.observe.traces.query import query_traces
from opsworld.observe.traces.spans import DOWNSTREAM, Span, Trace

__all__ = ["DOWNSTREAM", "Span", "Trace", "query_traces"]
