"""`opsworld import traces`: a scenario measured from spans. On small traces the test writes, every measured number
is the one the traces hold (services, endpoints and shares, calls per request, own time outside the calls waited on,
parallel calls, retries, databases behind query spans, idle pods); the YAML validates and simulates; and on the
shared Nezha recordings, when present, the importer finds the systems the recordings are of."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from opsworld.engine import Engine
from opsworld.spec import load_scenario
from opsworld.spec.traces.build import build
from opsworld.spec.traces.spans import Spans, link_parents

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def spans_of(rows: list[tuple]) -> Spans:
    """(trace, span, parent id, service, operation, start ms, duration ms[, error]) rows as a table."""
    trace = np.array([r[0] for r in rows], dtype=object)
    span = np.array([r[1] for r in rows], dtype=object)
    parent = np.array([r[2] for r in rows], dtype=object)
    return Spans(trace=trace, span=span, parent=link_parents(trace, span, parent),
                 service=np.array([r[3] for r in rows], dtype=object),
                 instance=np.array([f"{r[3]}-pod-{int(r[0][1:]) % 2}" for r in rows], dtype=object),
                 operation=np.array([r[4] for r in rows], dtype=object),
                 kind=np.array([""] * len(rows), dtype=object),
                 start=1_700_000_000 + np.array([r[5] for r in rows], dtype=float) / 1e3,
                 duration=np.array([r[6] for r in rows], dtype=float) / 1e3,
                 error=np.array([r[7] if len(r) > 7 else False for r in rows], dtype=bool))


def shop(n: int = 20) -> Spans:
    """`GET /item` (3 of 4 requests): the gateway calls catalog then, in parallel, prices and stock; catalog runs
    two queries (an ORM span around the driver's). `POST /buy` (1 of 4): the gateway calls payments, which fails
    once and is retried. The gateway spends 10 ms of its own on each request."""
    rows = []
    for i in range(n):
        t, s0 = f"t{i}", 1000.0 * i
        if i % 4:
            rows += [(t, "r", "", "gateway", "GET /item", s0, 60),
                     (t, "c", "r", "catalog", "Catalog/Get", s0 + 5, 20),
                     (t, "q1", "c", "catalog", "SELECT Item", s0 + 8, 6),
                     (t, "q1d", "q1", "catalog", "SELECT shop.items", s0 + 9, 4),
                     (t, "q2", "c", "catalog", "SELECT shop.tags", s0 + 15, 4),
                     (t, "p", "r", "prices", "Prices/Get", s0 + 30, 20),
                     (t, "s", "r", "stock", "Stock/Get", s0 + 30, 25)]
        else:
            rows += [(t, "r", "", "gateway", "POST /buy", s0, 50),
                     (t, "y1", "r", "payments", "Pay", s0 + 2, 10, True),
                     (t, "y2", "r", "payments", "Pay", s0 + 14, 26)]
    return spans_of(rows)


def test_the_scenario_holds_what_the_traces_measured() -> None:
    m = build(shop(), name="Shop Imported", source="test")
    assert m.name == "shop-imported"
    assert set(m.services) == {"gateway", "catalog", "prices", "stock", "payments", "shop-db"}
    assert m.services["shop-db"].kind == "datastore"
    eps = {e.name: e for e in m.endpoints}
    assert set(eps) == {"GET /item", "POST /buy"}
    assert eps["GET /item"].share == pytest.approx(0.75) and eps["POST /buy"].share == pytest.approx(0.25)
    item = {d.target: d for d in eps["GET /item"].calls}
    assert {t: d.calls for t, d in item.items()} == {"catalog": 1.0, "prices": 1.0, "stock": 1.0}
    assert item["prices"].parallel == 1.0 and item["stock"].parallel == 1.0 and item["catalog"].parallel == 0.0
    buy = {d.target: d for d in eps["POST /buy"].calls}
    # one call a request, retried once when it fails (the repeat is the retry, not a second call)
    assert buy["payments"].calls == 1.0 and buy["payments"].retried == 1.0 and buy["payments"].errors == 0.5
    # the ORM's span and the driver's inside it are one query: two queries per catalog request, to one database
    catalog = {d.target: d.calls for d in m.services["catalog"].dependencies}
    assert catalog == {"shop-db": 2.0}
    # own time: 60 ms less the union of [5, 25] and [30, 55] (the parallel pair counted once) = 15 ms; and the law
    # drawn from has that median
    gateway = m.services["gateway"]
    assert gateway.own_p50 == pytest.approx(15e-3, rel=1e-6)
    assert gateway.own_mean * (1 - gateway.own_cv ** 2 / 9) ** 3 == pytest.approx(15e-3, rel=1e-6)
    assert m.services["catalog"].own_p50 == pytest.approx(20e-3 - 6e-3 - 4e-3, rel=1e-6)
    assert m.services["gateway"].replicas == 2
    assert m.services["payments"].handlers == {}                      # one operation: one handler for everything
    assert m.base_rate == pytest.approx(20 / 60.0)          # 20 roots over the one recorded minute


def test_the_yaml_validates_simulates_and_says_what_was_assumed() -> None:
    m = build(shop(), name="shop", source="test", pods=["gateway", "audit-log"])
    text = m.yaml()
    assert "# assumed" in text and "concurrency: 64          # assumed" in text
    sc = load_scenario(yaml.safe_load(text))
    assert sc.components["audit-log"].dependencies == []          # in the pod list, never traced: idle
    assert sc.components["shop-db"].kind == "datastore"
    gw = {d.target: d for d in next(e for e in sc.traffic.endpoints if e.name == "POST /buy").calls}
    assert gw["payments"].retries == 1 and gw["payments"].calls == 1.0
    item = {d.target: d for d in next(e for e in sc.traffic.endpoints if e.name == "GET /item").calls}
    assert item["prices"].mode == "parallel" and item["catalog"].mode == "sequential"
    truth = Engine(sc, worlds=2, seed=0).step()
    assert truth.requests.sum() > 0 and np.isfinite(truth.latency_mean).all()


def test_a_catch_all_route_is_named_by_what_it_calls_and_cycles_are_broken() -> None:
    rows = []
    for i in range(10):
        t, s0 = f"t{i}", 1000.0 * i
        rows += [(t, "r", "", "edge", "/*", s0, 40),
                 (t, "h", "r", "edge", "HTTP POST" if i % 2 else "HTTP GET", s0 + 1, 30),
                 (t, "a", "h", "orders", "/api/orders" if i % 2 else "/api/users", s0 + 2, 28),
                 (t, "b", "a", "users", "/users/check", s0 + 4, 10)]
        if i == 0:
            rows += [(t, "back", "b", "orders", "/api/callback", s0 + 5, 2)]      # users -> orders: a cycle
    m = build(spans_of(rows), source="test")
    assert sorted(e.name for e in m.endpoints) == ["GET /api/users", "POST /api/orders"]
    assert any("cycle" in n for n in m.notes)
    load_scenario(yaml.safe_load(m.yaml()))


def test_no_spans_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="no spans"):
        build(Spans.concat([]), source="empty.json")


@pytest.mark.skipif(not (DATA / "nezha-train-ticket" / "trace").is_dir(), reason="shared recordings absent")
def test_the_train_ticket_recording_gives_the_whole_system(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from opsworld.cli import app

    out = tmp_path / "tt.yaml"
    result = CliRunner().invoke(app, ["import", "traces", str(DATA / "nezha-train-ticket" / "trace"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    sc = load_scenario(out)
    assert len(sc.components) >= 40
    assert sc.name == "nezha-train-ticket"
    assert {"ts-gateway-service", "ts-order-service", "ts-travel-service"} <= set(sc.components)
    assert any(c.kind == "datastore" for c in sc.components.values())
    assert any(e.name.startswith("POST /api/v1/travelservice") for e in sc.traffic.endpoints)


@pytest.mark.skipif(not (DATA / "nezha-online-boutique" / "trace").is_dir(), reason="shared recordings absent")
def test_the_online_boutique_recording_gives_the_online_shop_call_graph() -> None:
    """The template's edges, but for three, each explained: the recorded checkouts' currency conversions and the
    cart's Redis calls left no span on the callee's side (an untraced client), and the recorded adservice reads
    its ads from a database the template leaves out (its query spans name it)."""
    from opsworld.calibration.imported import agreement_share, check_import
    from opsworld.spec.traces import read_spans

    model = build(read_spans(DATA / "nezha-online-boutique" / "trace"), name="ob", source="nezha")
    scenario = load_scenario(yaml.safe_load(model.yaml()))
    imported = {(a, d.target) for a, c in scenario.components.items() for d in c.dependencies}
    imported |= {(ep.service, d.target) for ep in scenario.traffic.endpoints for d in ep.calls or []}
    shop = load_scenario("online-shop")
    template = {(a, d.target) for a, c in shop.components.items() for d in c.dependencies}
    template |= {(ep.service, d.target) for ep in shop.traffic.endpoints for d in ep.calls or []}
    assert template - imported == {("checkoutservice", "currencyservice"), ("cartservice", "redis-cart")}
    assert imported - template == {("adservice", "addatabase-db")}
    # each service's handlers, measured: the cart's three methods, GetCart the most called
    cart = scenario.components["cartservice"].handlers
    assert set(cart) == {f"hipstershop.CartService/{m}" for m in ("GetCart", "AddItem", "EmptyCart")}
    assert max(cart, key=cart.get) == "hipstershop.CartService/GetCart"
    assert sum(cart.values()) == pytest.approx(1, abs=0.01)
    rows = check_import(model, scenario, minutes=5.0, worlds=2)
    calls = [r for r in rows if r.what == "calls"]
    assert calls and all(r.agrees for r in calls), [r for r in calls if not r.agrees]
    assert agreement_share([r for r in rows if r.what == "p50 served"]) >= 0.8


def test_the_command_imports_an_otlp_export_and_checks_it(tmp_path: Path) -> None:
    """End to end from the CLI: an OTLP JSON Lines export (as the collector's file exporter writes it) in, a scenario
    that validates out, the check table on stderr; a path that is not there is one line and exit 2."""
    import json

    from typer.testing import CliRunner

    from opsworld.cli import app

    def span(trace: int, sid: str, parent: str, name: str, kind: int, start_ms: float, ms: float) -> dict:
        t0 = 1_700_000_000_000_000_000 + int(trace * 1e9 + start_ms * 1e6)
        return {"traceId": f"{trace:032x}", "spanId": sid, "parentSpanId": parent, "name": name, "kind": kind,
                "startTimeUnixNano": str(t0), "endTimeUnixNano": str(t0 + int(ms * 1e6)), "status": {"code": 0}}

    def batch(service: str, spans: list[dict]) -> str:
        return json.dumps({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}]}]})

    lines = []
    for i in range(40):
        lines.append(batch("web", [span(i, f"{i:08x}0001", "", "GET /home", 2, 0, 30),
                                   span(i, f"{i:08x}0002", f"{i:08x}0001", "api/Get", 3, 5, 20)]))
        lines.append(batch("api", [span(i, f"{i:08x}0003", f"{i:08x}0002", "api/Get", 2, 6, 18),
                                   span(i, f"{i:08x}0004", f"{i:08x}0003", "SELECT shop.items", 3, 8, 4)]))
    export = tmp_path / "traces.jsonl"
    export.write_text("\n".join(lines) + "\n")
    out = tmp_path / "shop.yaml"
    result = CliRunner().invoke(app, ["import", "traces", str(export), "--out", str(out), "--check"])
    assert result.exit_code == 0, result.output
    sc = load_scenario(out)
    assert set(sc.components) == {"web", "api", "shop-db"} and sc.components["shop-db"].kind == "datastore"
    assert [ep.name for ep in sc.traffic.endpoints] == ["GET /home"]
    assert "the imported model beside its traces" in result.output
    missing = CliRunner().invoke(app, ["import", "traces", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such file or folder" in missing.output
