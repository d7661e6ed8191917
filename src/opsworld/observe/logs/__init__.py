"""The log sensor: the lines each component's processes print, produced lazily when someone queries them.

Nothing is written while an episode runs. `query_logs` walks the recorded ticks a query needs (newest first, until
`limit` lines match) and, for each component the query selects, derives from that tick's truth and the system's
state (knobs, replicas) what its processes would print: a few access lines in proportion to its requests, routine
chatter, harmless warnings and the odd benign error, and the lines real causes print — a caller's
`dial tcp 10.96.0.14:6379: connect: connection refused` when its calls are refused, a stack trace when its requests
fail in its own code, `OOMKilled` when a replica at its memory limit is killed, PostgreSQL's slow-query lines when
its tail latency passes a second (`templates.py` holds the words). Every draw is keyed by (seed, world, tick,
component, source, line), so the same world shows the same lines whatever else was queried, in whatever order.

Conventions: times are Unix seconds; `world` is the world's index in the recording's batch (its randomness is keyed
by its global number, `first_world + world`); results are newest first (`direction="backward"`, Loki's default)
or oldest first (`direction="forward"`). Stream labels: `service` (also `app`, `container`), `pod`, `node`, `zone`,
`namespace` and `level` (DEBUG, INFO, WARN, ERROR; matched without regard to case, so `level="error"` works).

Rooms: `view.py` (what the sensors see of a world at a tick, shared with the traces), `lines.py` (what each source
writes), `templates.py` (the words), `logql.py` (the query language), `query.py` (`query_logs`).
"""

from opsworld.observe.logs.logql import LogQueryError, parse_logql
from opsworld.observe.logs.query import query_logs
from opsworld.observe.logs.view import LEVELS, LogLine

__all__ = ["LEVELS", "LogLine", "LogQueryError", "parse_logql", "query_logs"]
