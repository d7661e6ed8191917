"""Turning simulated rows into spans: OpenTelemetry kinds, names, attributes, statuses and exception events."""


from __future__ import annotations


import numpy as np

from opsworld.observe.logs import templates as tpl
from opsworld.observe.logs.lines import tpl_kind
from opsworld.observe.logs.templates import Profile, Rand
from opsworld.observe.logs.view import TickState
from opsworld.observe.traces.calls import Node, Params, Run, finalise, mix
from opsworld.observe.traces.spans import (CONSUMER, DB, DOWNSTREAM, OK, ORIGIN, PRODUCER, PROPAGATE, SERVER, SPAN_KIND,
                                           SPAN_SALT, TEXT_SALT, Span, Trace)


# ---- turning simulated rows into spans -----------------------------------------------------------------------------

_GRPC_CODES = {tpl.REFUSED: 14, tpl.NO_SUCH_HOST: 14, tpl.IO_TIMEOUT: 14, tpl.UNAUTHORIZED: 16,
               tpl.TOO_MANY_CLIENTS: 14, tpl.CERT_EXPIRED: 14, tpl.RATE_LIMITED: 8, tpl.NO_ENDPOINTS: 14,
               tpl.QUEUE_FULL: 14, tpl.BREAKER_OPEN: 14, tpl.DEADLINE: 4, tpl.POOL_EXHAUSTED: 4, tpl.CALLEE_ERROR: 2}
_HTTP_CODES = {tpl.RATE_LIMITED: 429, tpl.UNAUTHORIZED: 401, tpl.DEADLINE: 504}


class Builder:
    """Spans of chosen rows of a run."""

    def __init__(self, run: Run, params: Params, skews: np.ndarray) -> None:
        self.run, self.p, self.skews = run, params, skews
        self.tree = run.tree
        self.view = run.tree.view
        self._attrs: dict[tuple[int, int, int], dict] = {}

    def trace(self, row: int) -> Trace:
        run, tree = self.run, self.tree
        rowkey = int(run.keys[row])
        trace_id = f"{mix(rowkey, 1):016x}{mix(rowkey, 2):016x}"
        ts = self.p.states[int(run.tick_of[row])]
        present = np.flatnonzero(run.exists[:, row])
        with np.errstate(over="ignore"):
            span_ids = finalise(run.keys[row] ^ tree.keys[present] ^ np.uint64(SPAN_SALT)).tolist()
        ids: dict[int, str] = {}
        spans = []
        for m, sid in zip(present.tolist(), span_ids):
            node = tree.nodes[m]
            parent = ids.get(node.parent) if node.parent >= 0 else None
            if node.parent >= 0 and parent is None:
                continue        # its parent has not happened yet (a message still queued)
            ids[m] = f"{sid:016x}"
            spans.append(self.span(m, node, row, rowkey, trace_id, ids[m], parent, ts))
        return Trace(trace_id, spans)

    def span(self, m: int, node: Node, row: int, rowkey: int, trace_id: str, span_id: str, parent: str | None,
             ts: TickState) -> Span:
        run, view = self.run, self.view
        start, end = float(run.start[m, row]), float(run.end[m, row])
        skew = float(self.skews[node.comp])
        status, cause = int(run.status[m, row]), int(run.cause[m, row])
        me, peer = view.profiles[node.comp], view.profiles[node.peer] if node.peer >= 0 else None
        known = self._attrs.get((m, status, cause))
        if known is None:       # the same span position with the same outcome has the same attributes
            known = self._attrs[(m, status, cause)] = self.attributes(node, me, peer, status, cause)
        attrs = dict(known)
        events: list[dict] = []
        message = ""
        if status == PROPAGATE:
            message = DOWNSTREAM
        elif status == ORIGIN:
            rng = Rand(rowkey ^ int(self.tree.keys[m]) ^ TEXT_SALT)
            etype, message, stack = self.origin(node, me, peer, cause, ts, rng, end)
            event = {"exception.type": etype, "exception.message": message}
            if stack and stack != message:
                event["exception.stacktrace"] = stack
            events.append({"name": "exception", "time": end + skew, "attributes": event})
            attrs["error.type"] = etype
        if status != OK and "error.type" not in attrs:
            attrs["error.type"] = "500" if me.protocol == "http" else "2"
        return Span(trace_id, span_id, parent, me.name, node.name, start + skew, max(end - start, 0.0),
                    "ERROR" if status != OK else "OK", message, attrs, events, SPAN_KIND[node.kind])

    def origin(self, node: Node, me: Profile, peer: Profile | None, cause: int, ts: TickState, rng: Rand,
               end: float) -> tuple[str, str, str]:
        """(exception type, message, full text) of the error that begins at this span."""
        view = self.view
        if node.kind in (SERVER, CONSUMER):
            if cause == tpl.DEADLINE:
                return "context.DeadlineExceeded", "context deadline exceeded", ""
            c = node.comp
            disk, kv = float(ts.disk_error[c]), float(ts.kv_error[c])
            which = rng.pick([max(float(ts.error_rate[c]), 1e-6), disk, kv])
            if which == 1:
                text = tpl.disk_full(me, rng)
                return "OSError", text.split("\n")[0], text
            if which == 2:
                etype, text = tpl.kv_failed(rng)
                return etype, text, ""
            method = node.name.split("/")[-1] if me.protocol != "http" else node.name
            return tpl.own_error(me, tpl_kind(int(ts.error_kind[c])), method, rng, end)
        assert peer is not None
        e = node.edge
        if cause == tpl.CALLEE_ERROR:
            etype, msg, text = tpl.store_error(peer, tpl_kind(int(ts.error_kind[node.peer])), rng)
            return etype, msg, text
        pod = view.replicas_of[node.comp][0]
        ctx = tpl.CallContext(me, peer, view.service_ips[node.peer], end, float(ts.cert_not_after[node.peer]),
                              int(ts.pool_size[e]), float(ts.timeout[e]), node.slot, source=view.pod_ips[int(pod)])
        etype, msg = tpl.call_failure(cause, ctx, rng)
        return etype, msg, ""

    def attributes(self, node: Node, me: Profile, peer: Profile | None, status: int, cause: int) -> dict:
        view = self.view
        attrs: dict = {}
        if node.kind in (SERVER, CONSUMER) and node.parent < 0:          # the entry request
            method, _, path = node.name.partition(" ")
            code = 200 if status == OK else (504 if cause == tpl.DEADLINE else 500)
            attrs.update({"http.request.method": method or "GET", "http.route": path or node.name,
                          "url.scheme": "https", "http.response.status_code": code,
                          "server.address": me.name, "server.port": me.port})
            return attrs
        if node.kind == CONSUMER:
            queue = view.profiles[self.tree.nodes[node.parent].peer]
            attrs.update({"messaging.system": tpl.MESSAGING_SYSTEM.get(queue.runtime, queue.runtime),
                          "messaging.operation.type": "process", "messaging.destination.name": queue.name,
                          "messaging.consumer.group.name": me.name})
            return attrs
        if node.kind == SERVER:
            attrs.update(_rpc_attrs(me, node.slot, status, cause, server=True))
            attrs.update({"server.address": me.name, "server.port": me.port})
            return attrs
        assert peer is not None
        if node.kind == PRODUCER:
            attrs.update({"messaging.system": tpl.MESSAGING_SYSTEM.get(peer.runtime, peer.runtime),
                          "messaging.operation.type": "send", "messaging.destination.name": peer.name})
        elif node.kind == DB:
            op = peer.method(node.slot)
            attrs.update({"db.system": tpl.DB_SYSTEM.get(peer.runtime, peer.runtime), "db.operation.name": op})
            if peer.runtime in ("postgres", "mysql", "mongodb"):
                table = peer.name.split("-")[-1]
                attrs["db.collection.name"] = table
                if peer.runtime != "mongodb":
                    attrs["db.query.text"] = f"{op} ... {table} WHERE id = $1" if op != "INSERT" else \
                        f"INSERT INTO {table} VALUES ($1, $2)"
        else:
            attrs.update(_rpc_attrs(peer, node.slot, status, cause, server=False))
            if node.attempt and peer.protocol == "http":
                attrs["http.request.resend_count"] = node.attempt
        attrs.update({"server.address": peer.name, "server.port": peer.port, "peer.service": peer.name})
        return attrs


def _rpc_attrs(p: Profile, slot: int, status: int, cause: int, server: bool) -> dict:
    if p.protocol == "http":
        code = 200 if status == OK else _HTTP_CODES.get(cause, 500)
        if not server and status == ORIGIN and cause in (tpl.REFUSED, tpl.NO_SUCH_HOST, tpl.IO_TIMEOUT,
                                                         tpl.NO_ENDPOINTS, tpl.CERT_EXPIRED, tpl.POOL_EXHAUSTED,
                                                         tpl.BREAKER_OPEN, tpl.DEADLINE):
            return {"http.request.method": "POST", "url.full": f"http://{p.name}:{p.port}{p.method(slot)}"}
        out = {"http.request.method": "POST", "http.response.status_code": code}
        out["http.route" if server else "url.full"] = p.method(slot) if server else \
            f"http://{p.name}:{p.port}{p.method(slot)}"
        return out
    code = 0 if status == OK else (_GRPC_CODES.get(cause, 2) if status == ORIGIN else 13)
    system = "grpc" if p.protocol == "grpc" else "apache_thrift"
    out = {"rpc.system": system, "rpc.service": p.rpc_service, "rpc.method": p.method(slot)}
    if system == "grpc":
        out["rpc.grpc.status_code"] = code
    return out
