"""Prometheus metrics and component health of the ledger service.

Each service owns a :class:`LedgerMetrics` with its own ``CollectorRegistry`` (never the
process-global one), so several services in one process (tests, the embedded demo) do not
collide and ``/metrics`` shows exactly one service.

What is measured, and where it comes from:

- ``supet_readings_accepted_total{source}`` / ``supet_readings_rejected_total{source,code}``:
  every submission's outcome, counted once by the ingest pipeline (HTTP and MQTT alike; an
  identical resubmission answered with its earlier receipt counts as accepted);
- ``supet_anchor_backlog_readings``: readings committed but not yet anchored (not yet in a
  batch, or in a batch not yet confirmed), computed at scrape time;
- ``supet_anchoring_latency_seconds``: **per batch**, from the receipt time of the batch's
  oldest reading to the confirmation of its anchoring: the worst latency of any reading of the
  batch, so a p99 alert on it is conservative; ``supet_batches_anchored_total`` and
  ``supet_readings_anchored_total`` count the confirmations;
- ``supet_chain_up`` (1/0), ``supet_chain_block`` (last block seen), ``supet_database_up``,
  ``supet_broker_connected``, ``supet_anchor_signer_balance_wei``: the latest probe by
  :class:`HealthMonitor` (a background thread, so a scrape never waits for a dead node);
- ``supet_http_request_duration_seconds{method,route,status}``: per route *template*
  (``/v1/devices/{device_id}``), never the raw path, so cardinality stays bounded;
- ``supet_mqtt_dead_letters_total{reason}``: MQTT messages set aside on the dead-letter topic and
  acknowledged (``pipeline_error``: the pipeline kept failing on it; ``undecodable``: decoding raised);
- ``supet_window_checked_total{line,parameter}`` / ``supet_window_breaches_total{line,parameter}``:
  readings' values of a line's windowed parameters checked by this instance's live window check, and
  those outside the line's current window (``ledger_service/analytics_store/window_check.py``). One
  series per line and parameter of a published window set (a set has a handful of parameters); past
  :data:`MAX_WINDOW_SERIES` pairs, further ones are counted under ``line="_other",parameter="_other"``.
  No factory label: a line's name is the factory's own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "CONTENT_TYPE",
    "ComponentHealth",
    "ComponentState",
    "HealthMonitor",
    "LedgerMetrics",
    "MetricsMiddleware",
]

log = logging.getLogger(__name__)

#: Anchoring latency buckets (seconds): batches close within seconds, confirmations take blocks.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
#: Most labelled series :class:`LedgerMetrics` keeps at hand per metric (more are looked up each time).
_SERIES_CACHED = 1024
#: HTTP request duration buckets (seconds).
HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

OK, DOWN, DISABLED, UNKNOWN = "ok", "down", "disabled", "unknown"
#: The most (line, parameter) pairs the window check's counters label; further ones share ``_other``.
MAX_WINDOW_SERIES = 500


class _Outcome(Protocol):
    @property
    def code(self) -> str | None: ...


class _WindowIncrement(Protocol):
    @property
    def line_id(self) -> str: ...
    @property
    def parameter(self) -> str: ...
    @property
    def checked(self) -> int: ...
    @property
    def outside(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ComponentState:
    """One component's state (``ok``, ``down``, ``disabled``, ``unknown``) and since when (ms)."""

    state: str
    since_ms: int
    detail: str | None = None
    #: Last time the component was seen ok (ms), if ever.
    last_ok_ms: int | None = None

    def to_json_obj(self) -> dict[str, object]:
        return {
            "state": self.state,
            "since_ms": self.since_ms,
            "detail": self.detail,
            "last_ok_ms": self.last_ok_ms,
        }


class ComponentHealth:
    """The state of chain, database and broker, with the time each entered its state. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, ComponentState] = {}

    def record(self, name: str, state: str, detail: str | None = None) -> ComponentState:
        """Record a probe: ``since_ms`` moves only when the state changes (a flapping detail does not)."""
        now = int(self._clock() * 1000)
        with self._lock:
            old = self._states.get(name)
            since = old.since_ms if old is not None and old.state == state else now
            last_ok = now if state == OK else (old.last_ok_ms if old is not None else None)
            new = ComponentState(state=state, since_ms=since, detail=detail, last_ok_ms=last_ok)
            self._states[name] = new
        if old is not None and old.state != state:
            level = logging.INFO if state in (OK, DISABLED) else logging.ERROR
            log.log(
                level,
                "%s is %s (was %s)%s",
                name,
                state,
                old.state,
                f": {detail}" if detail else "",
                extra={"event": f"{name}.{state}", "component": name, "detail": detail},
            )
        return new

    def get(self, name: str) -> ComponentState:
        with self._lock:
            return self._states.get(name) or ComponentState(state=UNKNOWN, since_ms=0)

    def snapshot(self) -> dict[str, ComponentState]:
        with self._lock:
            return dict(self._states)


class LedgerMetrics:
    """The service's metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.health = ComponentHealth()
        r = self.registry
        self.readings_accepted = Counter(
            "supet_readings_accepted",
            "Readings acknowledged (stored), by ingest source.",
            ["source"],
            registry=r,
        )
        self.readings_rejected = Counter(
            "supet_readings_rejected",
            "Submissions refused, by ingest source and rejection code.",
            ["source", "code"],
            registry=r,
        )
        self.batches_anchored = Counter(
            "supet_batches_anchored", "Batches whose anchoring was confirmed on chain.", registry=r
        )
        self.readings_anchored = Counter(
            "supet_readings_anchored", "Readings in batches confirmed on chain.", registry=r
        )
        self.anchoring_latency = Histogram(
            "supet_anchoring_latency_seconds",
            "Per batch: receipt of its oldest reading to confirmation of its anchoring (the batch's "
            "worst reading latency).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backlog = Gauge(
            "supet_anchor_backlog_readings", "Readings committed but not yet anchored.", registry=r
        )
        self.lost_batches = Gauge(
            "supet_anchor_lost_batches",
            "Chain batches of this signer unknown to the store (restored backup) still to re-form.",
            registry=r,
        )
        self.anchor_leader = Gauge(
            "supet_anchor_leader",
            "1 while this instance leads anchoring (one instance among those sharing the database).",
            registry=r,
        )
        self.anchor_leader_epoch = Gauge(
            "supet_anchor_leader_epoch",
            "The anchoring lead's epoch (fencing token) this instance holds; 0 while it does not lead.",
            registry=r,
        )
        self.chain_up = Gauge("supet_chain_up", "1 when the chain node answered the last probe.", registry=r)
        self.chain_block = Gauge("supet_chain_block", "Last block number seen on the chain.", registry=r)
        self.database_up = Gauge(
            "supet_database_up", "1 when the database answered the last probe.", registry=r
        )
        self.broker_connected = Gauge(
            "supet_broker_connected",
            "1 when MQTT ingest is connected and subscribed (0 when down or not configured).",
            registry=r,
        )
        self.signer_balance = Gauge(
            "supet_anchor_signer_balance_wei", "Balance of the anchoring signer (wei).", registry=r
        )
        self.mqtt_dead_letters = Counter(
            "supet_mqtt_dead_letters",
            "MQTT messages dead-lettered (published to dead-letters/<topic> and acknowledged), by reason.",
            ["reason"],
            registry=r,
        )
        for reason in ("pipeline_error", "undecodable"):
            self.mqtt_dead_letters.labels(reason=reason)  # present at 0 from the start, for alerts
        self.window_checked = Counter(
            "supet_window_checked",
            "Values of a line's windowed parameters checked against its current operating window.",
            ["line", "parameter"],
            registry=r,
        )
        self.window_breaches = Counter(
            "supet_window_breaches",
            "Values of a line's windowed parameters outside its current operating window.",
            ["line", "parameter"],
            registry=r,
        )
        self._window_series: set[tuple[str, str]] = set()
        self._window_lock = threading.Lock()
        self.http_duration = Histogram(
            "supet_http_request_duration_seconds",
            "HTTP request durations by method, route template and status.",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        #: The labelled series of the hottest observations, by their labels: ``labels()`` looks them up
        #: under a lock on every call (issue 17.3: about 5 us of each single submit). Plain dicts (a
        #: racing miss only asks ``labels()`` twice for the same series); at most :data:`_SERIES_CACHED`.
        self._http_series: dict[tuple[str, str, int], Any] = {}
        self._accepted_series: dict[str, Any] = {}

    # ------------------------------------------------------------------ observations

    def observe_ingest(self, results: Sequence[_Outcome], source: str) -> None:
        """Count one submission call's outcomes."""
        accepted = 0
        rejected: dict[str, int] = {}
        for res in results:
            if res.code is None:
                accepted += 1
            else:
                rejected[res.code] = rejected.get(res.code, 0) + 1
        if accepted:
            series = self._accepted_series.get(source)
            if series is None:
                series = self.readings_accepted.labels(source=source)
                if len(self._accepted_series) < _SERIES_CACHED:
                    self._accepted_series[source] = series
            series.inc(accepted)
        for code, n in rejected.items():
            self.readings_rejected.labels(source=source, code=code).inc(n)

    def observe_http(self, method: str, route: str, status: int, seconds: float) -> None:
        """One HTTP request's duration, by method, route template and status."""
        key = (method, route, status)
        series = self._http_series.get(key)
        if series is None:
            series = self.http_duration.labels(method=method, route=route, status=str(status))
            if len(self._http_series) < _SERIES_CACHED:
                self._http_series[key] = series
        series.observe(seconds)

    def observe_dead_letter(self, reason: str) -> None:
        """An MQTT message was dead-lettered."""
        self.mqtt_dead_letters.labels(reason=reason).inc()

    def observe_window_check(self, increments: Sequence[_WindowIncrement]) -> None:
        """A window-check pass committed: count its values checked and outside, per line and parameter."""
        for inc in increments:
            key = (inc.line_id, inc.parameter)
            with self._window_lock:
                if key not in self._window_series:
                    if len(self._window_series) >= MAX_WINDOW_SERIES:
                        key = ("_other", "_other")
                    else:
                        self._window_series.add(key)
            line, parameter = key
            self.window_checked.labels(line=line, parameter=parameter).inc(inc.checked)
            self.window_breaches.labels(line=line, parameter=parameter).inc(inc.outside)

    def observe_anchored(self, *, count: int, oldest_received_ms: int, anchored_ms: int) -> None:
        """A batch's anchoring was confirmed."""
        self.batches_anchored.inc()
        self.readings_anchored.inc(count)
        self.anchoring_latency.observe(max(0.0, (anchored_ms - oldest_received_ms) / 1000))

    def bind_backlog(self, backlog: Callable[[], int]) -> None:
        """Compute the backlog at scrape time (``-1`` when the database cannot answer)."""

        def value() -> float:
            try:
                return float(backlog())
            except Exception:  # a scrape must not fail because the database is down
                return -1.0

        self.backlog.set_function(value)

    def bind_lost(self, lost: Callable[[], int]) -> None:
        self.lost_batches.set_function(lambda: float(lost()))

    def bind_leader(self, state: Callable[[], Any]) -> None:
        """The anchoring lead's gauges, read at scrape time from ``state()`` (a
        :class:`~ledger_service.anchoring.leader.LeaderState`, or ``None`` without anchoring)."""
        self.anchor_leader.set_function(lambda: 1.0 if (st := state()) is not None and st.leader else 0.0)
        self.anchor_leader_epoch.set_function(lambda: float(st.epoch) if (st := state()) is not None else 0.0)

    def bind_broker(self, connected: Callable[[], bool] | None) -> None:
        self.broker_connected.set_function(lambda: 1.0 if connected is not None and connected() else 0.0)

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)


class HealthMonitor:
    """Probes chain, database and broker every ``interval`` seconds in a background thread.

    Readiness probes the same way on demand (:meth:`probe`); metrics show the latest probe.
    """

    def __init__(
        self,
        metrics: LedgerMetrics,
        *,
        chain_block: Callable[[], int],
        database: Callable[[], None],
        broker: Callable[[], str] | None,
        signer_balance: Callable[[], int] | None = None,
        interval: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.chain_block = chain_block
        self.database = database
        self.broker = broker
        self.signer_balance = signer_balance
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: The last block number the chain answered, if it ever did.
        self.last_block: int | None = None

    def probe(self) -> dict[str, ComponentState]:
        """Check every component now; record and return their states."""
        m, h = self.metrics, self.metrics.health
        try:
            self.database()
            h.record("database", OK)
            m.database_up.set(1)
        except Exception as e:
            h.record("database", DOWN, f"{type(e).__name__}: {str(e)[:300]}")
            m.database_up.set(0)
        try:
            block = self.chain_block()
            self.last_block = block
            h.record("chain", OK, f"block {block}")
            m.chain_up.set(1)
            m.chain_block.set(block)
        except Exception as e:
            h.record("chain", DOWN, str(e)[:300])
            m.chain_up.set(0)
        else:
            if self.signer_balance is not None:
                try:
                    m.signer_balance.set(self.signer_balance())
                except Exception as e:  # the balance is informative; the chain state already says enough
                    log.debug("signer balance not read: %s", e)
        if self.broker is None:
            h.record("broker", DISABLED)
        else:
            status = self.broker()
            h.record("broker", OK if status == "ok" else DOWN, None if status == "ok" else status)
        return h.snapshot()

    def start(self) -> None:
        if self._thread is None and self.interval > 0:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="supet-health", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe()
            except Exception:
                log.exception("health probe failed")
            self._stop.wait(self.interval)


class MetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request by its route template.

    The template is read from ``scope["route"]`` after routing; requests that match no route
    (404s) share the label ``<unmatched>`` so a scanner cannot create unbounded label values.
    """

    def __init__(self, app: Any, metrics: Callable[[], LedgerMetrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "<unmatched>"
                metrics.observe_http(
                    scope.get("method", "?"), template, status[0], time.perf_counter() - start
                )
