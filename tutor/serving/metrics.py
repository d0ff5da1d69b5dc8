"""`/metrics` in the Prometheus text format: what a school's operator already scrapes.

Counts that the schedulers keep (queue depth, active sequences, tokens) are read at scrape time
by a collector, so serving never updates a metric per token; latencies are histograms observed
once a request. Each server has its own registry (a test runs several in one process). No label
names a student: per-user figures stay inside the server.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .scheduling import Scheduler

# Inline completion must answer within a few hundred milliseconds; chats run for seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60)
RATE_WINDOW_S = 10.0

__all__ = ["CONTENT_TYPE_LATEST", "ServerMetrics"]


class ServerMetrics:
    def __init__(self, schedulers: Callable[[], Iterable[Scheduler]]):
        self.registry = CollectorRegistry()
        self.requests = Counter("tutor_requests", "Requests answered, by model, endpoint and outcome "
                                "(stop, length, cancelled, error, rejected)", ["model", "endpoint", "outcome"],
                                registry=self.registry)
        self.first_token = Histogram("tutor_time_to_first_token_seconds", "From a request's arrival to its first "
                                     "piece of text", ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.duration = Histogram("tutor_request_duration_seconds", "From a request's arrival to its end",
                                  ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_SchedulerCollector(schedulers))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SchedulerCollector:
    """Queue depth, active sequences, tokens generated and tokens per second over the last 10 s."""

    def __init__(self, schedulers: Callable[[], Iterable[Scheduler]]):
        self.schedulers = schedulers
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def collect(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily("tutor_queue_depth", "Requests waiting to start", labels=["model"])
        active = GaugeMetricFamily("tutor_active_sequences", "Requests generating now", labels=["model"])
        tokens = CounterMetricFamily("tutor_generated_tokens", "Tokens generated", labels=["model"])
        rate = GaugeMetricFamily("tutor_tokens_per_second", f"Tokens generated per second over the last "
                                 f"{RATE_WINDOW_S:.0f} s (between scrapes)", labels=["model"])
        now = time.monotonic()
        for scheduler in self.schedulers():
            counts = scheduler.counts()
            waiting.add_metric([scheduler.name], counts["waiting"])
            active.add_metric([scheduler.name], counts["running"])
            tokens.add_metric([scheduler.name], counts["tokens"])
            rate.add_metric([scheduler.name], self._rate(scheduler.name, now, counts["tokens"]))
        return [waiting, active, tokens, rate]

    def _rate(self, name: str, now: float, total: int) -> float:
        samples = self._samples.setdefault(name, deque())
        samples.append((now, total))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        then, before = samples[0]
        return (total - before) / (now - then) if now > then else 0.0
