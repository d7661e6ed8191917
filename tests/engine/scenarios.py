"""Small scenarios built in code, for engine tests."""

from __future__ import annotations

from typing import Any


def single_service(servers: int, rho: float, mean: float = 0.01, cv: float = 1.0, **traffic: Any) -> dict:
    """One service as an M/M/c queue: `servers` cores, no slot limit, offered load `rho`."""
    rate = rho * servers / mean
    return {
        "name": "mmc",
        "duration": "30m",
        "tick": "10s",
        "nodes": [{"name": "node-1", "zone": "zone-a", "cpu": 64}],
        "components": {"svc": {"replicas": 1, "concurrency": 100000, "cpu": servers,
                               "service_time": {"mean": f"{mean * 1000:g}ms", "cv": cv}}},
        "traffic": {"base_rate": f"{rate:.6f}/s", "endpoints": [{"name": "GET /", "service": "svc", "timeout": "1h"}],
                    **traffic},
    }


def chain(**over: Any) -> dict:
    """web -> api -> db, with a cache in front of the db and a queue to a worker."""
    spec = {
        "name": "chain",
        "duration": "30m",
        "tick": "10s",
        "nodes": [{"name": "node-a", "zone": "zone-a", "cpu": 16}, {"name": "node-b", "zone": "zone-b", "cpu": 16}],
        "components": {
            "web": {"replicas": 2, "concurrency": 64, "cpu": 1, "service_time": {"mean": "2ms"},
                    "dependencies": [{"target": "api", "timeout": "500ms", "retries": 2, "backoff": "10ms"},
                                     {"target": "jobs", "timeout": "200ms"}]},
            "api": {"replicas": 2, "concurrency": 32, "cpu": 1, "service_time": {"mean": "3ms"},
                    "memory": "512Mi", "dependencies": [{"target": "cache", "calls": 2, "timeout": "100ms"}]},
            "cache": {"kind": "cache", "fronts": "db", "hit_ratio": 0.9, "replicas": 1, "cpu": 1,
                      "service_time": {"mean": "0.3ms"}},
            "db": {"kind": "datastore", "replicas": 1, "cpu": 2, "pool_size": 8, "service_time": {"mean": "4ms"}},
            "jobs": {"kind": "queue", "consumer": "worker", "replicas": 1, "cpu": 1, "service_time": {"mean": "0.5ms"}},
            "worker": {"replicas": 1, "concurrency": 4, "cpu": 1, "service_time": {"mean": "5ms"}},
        },
        "certificates": [{"name": "web-tls", "component": "web", "not_after": "2026-01-01T02:00:00Z"}],
        "traffic": {"base_rate": "100/s", "endpoints": [{"name": "GET /", "service": "web", "timeout": "5s",
                                                         "slo": {"latency": "200ms"}}]},
    }
    for key, value in over.items():
        spec[key] = value
    return spec
