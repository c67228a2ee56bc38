"""Run WorkItems on N Ray actors, each holding one LLM; chunks are pulled, so a fast replica takes more.

Each replica has at most two chunks at a time (running side by side on its LLM, so its engine
never drains between chunks). A replica that dies has its unfinished chunks retried on the others
up to `max_attempts` times per item; past that, or with no replica left, the items get 500/503
records. `ray` is imported only here.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from nanovl.batch.execute import Done
from nanovl.batch.jobs import BatchInputError, error_record
from nanovl.batch.prepare import WorkItem

CHUNKS_PER_REPLICA = 2


@dataclass
class RayOptions:
    """--ray settings: replicas and their resources, the cluster to join (None: RAY_ADDRESS or a local one)."""

    replicas: int = 1
    cpus_per_replica: float = 1.0
    # None: one GPU each when the cluster has a GPU per replica, else none
    gpus_per_replica: float | None = None
    address: str | None = None
    chunk_size: int = 8
    max_attempts: int = 2
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


class Replica:
    """The actor's body: one LLM, loaded once; runs chunks through its continuous batching."""

    def __init__(self, model: str | None, engine_kwargs: dict[str, Any], replica: int) -> None:
        from nanovl.batch.execute import Executor
        from nanovl.llm import LLM

        self.executor = Executor(LLM(model, **engine_kwargs), replica=replica)

    def ready(self) -> int:
        return os.getpid()

    def run_chunk(self, items: list[WorkItem]) -> list[Done]:
        # debug switch: die on a chunk holding this custom_id, first attempt only (tests the retry path)
        crash_on = os.environ.get("NANOVL_BATCH_CRASH_ON")
        if crash_on and any(i.custom_id == crash_on and i.attempts == 0 for i in items):
            os._exit(1)

        return list(self.executor.run_many(items))


def import_ray():
    try:
        import ray
    except ModuleNotFoundError:
        raise BatchInputError("--ray needs the ray package: pip install 'ray>=2.30' (or nanovl[ray])") from None
    return ray


def start_ray(ray, opts: RayOptions) -> bool:
    """Join or start a cluster (unless this process already has); True when this call started it."""
    if ray.is_initialized():
        return False
    address = opts.address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        num_cpus = max(os.cpu_count() or 1, int(opts.replicas * opts.cpus_per_replica + 0.999))
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def check_resources(ray, opts: RayOptions) -> None:
    """Settle gpus_per_replica, and refuse up front what the cluster can never place (Ray would wait forever)."""
    have = ray.cluster_resources()
    if opts.gpus_per_replica is None:
        opts.gpus_per_replica = 1.0 if have.get("GPU", 0) >= opts.replicas else 0.0
    for name, each in (("CPU", opts.cpus_per_replica), ("GPU", opts.gpus_per_replica)):
        need = opts.replicas * each
        if need > have.get(name, 0) + 1e-9:
            raise BatchInputError(f"--replicas {opts.replicas} x {each:g} {name}s each needs {need:g} {name}s; "
                                  f"the Ray cluster has {have.get(name, 0):g}")


def run_ray(model: str | None, items: Iterable[WorkItem], opts: RayOptions) -> Iterator[Done]:
    """Yield each item's Done as its chunk comes back from a replica."""
    ray = import_ray()
    started = start_ray(ray, opts)
    actors: dict[int, Any] = {}
    try:
        check_resources(ray, opts)
        actor_cls = ray.remote(num_cpus=opts.cpus_per_replica, num_gpus=opts.gpus_per_replica,
                               max_concurrency=CHUNKS_PER_REPLICA, max_restarts=0)(Replica)
        actors = {k: actor_cls.remote(model, opts.engine_kwargs, k) for k in range(opts.replicas)}
        _drop_failed_starts(ray, actors)
        yield from _Dispatch(ray, actors, opts).run(iter(items))
    finally:
        for actor in actors.values():
            ray.kill(actor)
        if started:
            ray.shutdown()


def _drop_failed_starts(ray, actors: dict[int, Any]) -> None:
    """Wait until every replica has loaded its model; one that could not is dropped, none at all raises."""
    errors = {}
    for k, actor in list(actors.items()):
        try:
            ray.get(actor.ready.remote())
        except ray.exceptions.RayError as err:
            errors[k] = err
            del actors[k]
    if not actors:
        first = " ".join(str(next(iter(errors.values()))).split())[-300:]
        raise RuntimeError(f"no batch replica could start: {first}")


class _Dispatch:
    """The driver's loop: hand chunks to idle replicas, collect, requeue a dead replica's work."""

    def __init__(self, ray, actors: dict[int, Any], opts: RayOptions) -> None:
        self.ray, self.actors, self.opts = ray, dict(actors), opts
        self.retry: deque[WorkItem] = deque()
        self.in_flight: dict[Any, tuple[int, list[WorkItem]]] = {}

    def run(self, items: Iterator[WorkItem]) -> Iterator[Done]:
        while True:
            self._fill(items)
            if not self.in_flight:
                break
            [ref], _ = self.ray.wait(list(self.in_flight), num_returns=1)
            replica, chunk = self.in_flight.pop(ref)
            try:
                yield from self.ray.get(ref)
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as err:
                yield from self._lost(replica, chunk, err)
        # every replica is gone: what is left never runs
        for item in itertools.chain(self.retry, items):
            yield _failed(item, 503, "no batch replica is left to run this request", "no_replica")

    def _fill(self, items: Iterator[WorkItem]) -> None:
        """Top every replica up to CHUNKS_PER_REPLICA chunks, one chunk per replica per round."""
        load = {k: 0 for k in self.actors}
        for replica, _ in self.in_flight.values():
            # a dead replica's chunks stay in flight until their errors are collected
            if replica in load:
                load[replica] += 1
        while any(n < CHUNKS_PER_REPLICA for n in load.values()):
            for k in sorted(k for k, n in load.items() if n < CHUNKS_PER_REPLICA):
                chunk = self._next_chunk(items)
                if not chunk:
                    return
                self.in_flight[self.actors[k].run_chunk.remote(chunk)] = (k, chunk)
                load[k] += 1

    def _next_chunk(self, items: Iterator[WorkItem]) -> list[WorkItem]:
        chunk = []
        while self.retry and len(chunk) < self.opts.chunk_size:
            chunk.append(self.retry.popleft())
        chunk += itertools.islice(items, self.opts.chunk_size - len(chunk))
        return chunk

    def _lost(self, replica: int, chunk: list[WorkItem], err: Exception) -> Iterator[Done]:
        if isinstance(err, self.ray.exceptions.RayActorError) and replica in self.actors:
            # a dead actor stays dead (max_restarts=0): stop sending it work. Its other chunk was
            # running too (max_concurrency), so it comes back as an error of its own and is retried
            del self.actors[replica]
        for item in chunk:
            item.attempts += 1
            if item.attempts < self.opts.max_attempts and self.actors:
                self.retry.append(item)
            else:
                yield _failed(item, 500, f"batch replica {replica} failed while running this request "
                                         f"({type(err).__name__}); tried {item.attempts} time(s)", "replica_failed")


def _failed(item: WorkItem, status: int, message: str, code: str) -> Done:
    return Done(error_record(item.custom_id, item.line_no, status, message, code=code), False)
