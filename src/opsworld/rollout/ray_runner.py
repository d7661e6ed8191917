"""Rollouts on a Ray cluster: each batch is one Ray task (one batched engine, its own world built from the plan and
the batch index, nothing shared), consumed in order with a bounded number in flight, by the same writer as the local
runner, so the same seeds give the same Parquet bytes.

The cluster's workers need opsworld installed (the same version, and numpy's, for bit-identical results: numpy's
vectorised math may round differently on other CPUs).
"""

from __future__ import annotations

import socket
from typing import Iterator
from urllib.parse import urlparse

from opsworld.rollout.runner import Batch, RolloutError, RolloutPlan, in_order, run_batch

_CONNECT_TIMEOUT = 5.0      # seconds to wait for the cluster's address to answer before giving up


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` (host:port, ray://host:port, or "auto": the one on this machine). Returns
    whether this call made the connection (the caller then `disconnect()`s); a connection already made in this
    process is used as it is. Raises `RolloutError` when Ray is missing or the cluster cannot be reached."""
    try:
        import ray
    except ImportError:
        raise RolloutError("ray is not installed: pip install 'opsworld[ray]'") from None
    if ray.is_initialized():
        return False
    if address != "auto":
        _probe(address)        # ray.init retries an unreachable address for minutes: fail fast instead
    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RolloutError(f"ray: cannot connect to the cluster at {address}: {str(exc).splitlines()[0]}") from None
    return True


def disconnect() -> None:
    """Leave the cluster joined by `connect`."""
    import ray
    ray.shutdown()


def cluster_cpus() -> int:
    """CPUs the cluster offers."""
    import ray
    return int(ray.cluster_resources().get("CPU", 1))


def ray_batches(plan: RolloutPlan, window: int | None = None) -> Iterator[Batch]:
    """The plan's batches in order, each run as a Ray task; at most `window` (default: twice the cluster's CPUs)
    running or waiting to be written."""
    import ray

    task = ray.remote(num_cpus=1, max_retries=1)(run_batch)
    plan_ref = ray.put(plan)
    running: set = set()         # refs of unfinished tasks (a finished one is dropped: its result is then freed)

    def finished(refs: list) -> list[tuple[object, Batch]]:
        done, _ = ray.wait(refs, num_returns=1)
        running.difference_update(done)
        return [(ref, ray.get(ref)) for ref in done]

    def submit(k: int):
        ref = task.remote(plan_ref, k)
        running.add(ref)
        return ref

    try:
        yield from in_order(plan.batches, window or 2 * cluster_cpus(), submit, finished)
    finally:
        for ref in running:          # a rollout stopped early leaves no work behind on the cluster
            ray.cancel(ref, force=True)


def _probe(address: str) -> None:
    """Raise `RolloutError` unless something listens at the address."""
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise RolloutError(f"ray: '{address}' is not a cluster address; give HOST:PORT or auto")
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise RolloutError(f"ray: cannot reach the cluster at {address}: {exc.strerror or exc}") from None
