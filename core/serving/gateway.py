"""Gateway process for one model deployment: ``python -m core.serving.gateway --model NAME``.

Reads its routing table from the state DB (or a routes file in a container), loads each
routed version once after checking its artifact's SHA-256, and swaps the table atomically
when a new revision appears: the new table is fully loaded before the swap, so a rollout
step or a rollback never fails a request and never restarts the process.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import secrets
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from core.deployment import DeploymentRow, RevisionRow, ServedVersion
from core.monitoring.feedback import FeedbackLog
from core.serving import GATEWAY_TOKEN_ENV
from core.serving.batching import DEFAULT_MAX_BATCH, DEFAULT_WINDOW_S, Batcher, check_config
from core.serving.loader import LoadedVersion, load_version
from core.serving.metrics import GatewayCollector, new_stats
from core.serving.prediction_log import PredictionLog
from core.serving.routing import RoutingTable
from core.state import get_engine

log = logging.getLogger("modelops.gateway")
SHADOW_QUEUE = 10_000
PREDICT_TIMEOUT_S = 10.0
_LABEL_FIELDS = ("implementation_status", "accuracy_claim", "validation_status")


class ShadowMirror:
    """Replays requests on the shadow versions from a background thread.

    Answers always come from the primary; the shadow's prediction is logged next to the
    primary's (same request id) with role ``shadow``. A full queue drops the mirror copy
    and counts it: shadow traffic must never slow the primary down.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self._queue: queue.Queue = queue.Queue(maxsize=SHADOW_QUEUE)
        self._thread: threading.Thread | None = None
        self.dropped = 0

    def submit(
        self, now: float, seq: int, table: RoutingTable, x: Any, feats: Any, labels: Any
    ) -> None:
        try:
            self._queue.put_nowait((now, seq, table.revision, table.shadows, x, feats, labels))
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(10)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued mirror request has been processed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._mirror(*item)
            finally:
                self._queue.task_done()

    def _mirror(
        self, now: float, seq: int, revision: int, shadows: tuple, x: Any, feats: Any, primary: Any
    ) -> None:
        for v in shadows:
            t0 = time.perf_counter()
            st = v.stats
            try:
                labels, proba = v.predict(x)
            except Exception as exc:  # a failing shadow is reported, and the primary is unaffected
                log.exception("shadow v%s failed", v.served.version)
                st.shadow_errors += 1
                self.gw.log.record(
                    (
                        now,
                        seq,
                        revision,
                        v.served.version,
                        "shadow",
                        500,
                        time.perf_counter() - t0,
                        feats,
                        None,
                        f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            elapsed = time.perf_counter() - t0
            st.shadow_requests += 1
            st.shadow_comparisons += 1
            if np.array_equal(np.asarray(labels).astype(str), np.asarray(primary).astype(str)):
                st.shadow_agreements += 1
            single = len(feats) > 0 and type(feats[0]) is not list
            out = {"prediction": labels.item(0) if single else labels.tolist()}
            if proba is not None:
                out["probabilities"] = proba[0] if single else proba
            self.gw.log.record(
                (now, seq, revision, v.served.version, "shadow", 200, elapsed, feats, out, None)
            )


class Gateway:
    """Holds the routing table of one model deployment and everything a request touches."""

    def __init__(
        self,
        model_name: str,
        state_db_url: str,
        *,
        environment: str = "production",
        poll_seconds: float = 0.5,
        routes_file: Path | None = None,
        log_flush_seconds: float = 0.5,
        predict_timeout_s: float = PREDICT_TIMEOUT_S,
        batching: bool = True,
        batch_window_s: float = DEFAULT_WINDOW_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        worker_dir: Path | None = None,
    ) -> None:
        check_config(batch_window_s, max_batch)
        # Micro-batching of concurrent single-row requests (core.serving.batching).
        self.batching = batching
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self._batchers: dict[tuple[str, str], Batcher] = {}
        self.model_name = model_name
        self.environment = environment
        # A thread-run model call that takes longer is answered 504 and counted against its
        # version (inline ONNX calls are µs-scale and run to completion on the event loop).
        self.predict_timeout_s = predict_timeout_s
        # (revision, {id(stats): counters when that revision started serving}): what each
        # version did on the current rollout step, since counters outlive revisions.
        self._revision_base: tuple[int, dict[int, dict[str, int]]] | None = None
        self.engine = get_engine(state_db_url)
        self.poll_seconds = poll_seconds
        self.routes_file = routes_file
        self._routes_mtime: float | None = None
        self.table: RoutingTable | None = None
        self.last_reload_error: str | None = None
        self.reloads = 0
        self._models: dict[tuple[str, str], LoadedVersion] = {}
        self._labelled: dict[tuple, LoadedVersion] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.seq = itertools.count(1)
        self.errors: dict[str, int] = {}
        self.gateway_id = secrets.token_hex(4)
        self.log = PredictionLog(
            self.engine,
            model_name,
            environment,
            gateway_id=self.gateway_id,
            flush_seconds=log_flush_seconds,
        )
        self.shadow = ShadowMirror(self)
        # POST /feedback: labels and A/B outcomes, joined to predictions by prediction_id.
        self.feedback = FeedbackLog(
            self.engine, model_name, environment, flush_seconds=log_flush_seconds
        )
        self.id_prefix = self.gateway_id.encode()
        # MODELOPS_GATEWAY_TOKEN: /predict and /feedback then need `Authorization: Bearer`
        # (read from the environment, never from a command line that `ps` shows).
        from core.serving.app import token_digest

        self.token_digest = token_digest(os.environ.get(GATEWAY_TOKEN_ENV))
        self.server_info: dict[str, str] = {}
        self.metrics_registry = CollectorRegistry(auto_describe=False)
        # With several worker processes: where each writes its counters for the others
        # (core.serving.workers); None for a gateway of one process.
        self.worker_dir = worker_dir
        self._peer_cache: tuple[float, list[dict[str, Any]]] | None = None
        self.metrics_registry.register(
            GatewayCollector(
                self._metric_versions,
                self._metric_errors,
                self._metric_extra,
                model_name=model_name,
            )
        )

    # Routing table --------------------------------------------------------------------
    def _latest(self) -> tuple[int, str, list[dict]] | None:
        if self.routes_file is not None:
            mtime = self.routes_file.stat().st_mtime
            if self.table is not None and mtime == self._routes_mtime:
                return None
            spec = json.loads(self.routes_file.read_text())
            self._routes_mtime = mtime
            base = self.routes_file.parent
            routes = [
                {
                    **r,
                    "artifact_uri": str((base / r["artifact_uri"]).resolve())
                    if "://" not in r["artifact_uri"] and not r["artifact_uri"].startswith("/")
                    else r["artifact_uri"],
                }
                for r in spec["routes"]
            ]
            return int(spec.get("revision", 1)), spec.get("strategy", "direct"), routes
        with self.engine.connect() as conn:
            row = conn.execute(
                select(RevisionRow.revision, RevisionRow.strategy, RevisionRow.routes)
                .join(DeploymentRow, DeploymentRow.id == RevisionRow.deployment_id)
                .where(
                    DeploymentRow.model_name == self.model_name,
                    DeploymentRow.environment == self.environment,
                )
                .order_by(RevisionRow.revision.desc())
                .limit(1)
            ).first()
        return None if row is None else (row.revision, row.strategy, row.routes)

    def _loaded(self, served: ServedVersion) -> LoadedVersion:
        """The loaded model for a route; counters are shared by every route with the same
        version, artifact and honesty labels (role and slot may change between revisions)."""
        key = (served.version, served.artifact_sha256)
        if key not in self._models:
            self._models[key] = load_version(served)
            if self.batching:
                m = self._models[key]
                self._batchers[key] = Batcher(
                    m.predict,
                    inline=m.inline,
                    window_s=self.batch_window_s,
                    max_batch=self.max_batch,
                )
        base = self._models[key]
        batcher = self._batchers.get(key)
        labels = (*key, *(getattr(served, f) for f in _LABEL_FIELDS))
        if labels not in self._labelled:
            # replace(): every field the loader prepared (columns, mixed schema) carries over.
            self._labelled[labels] = replace(
                base, served=served, stats=new_stats(), batcher=batcher
            )
        shared = self._labelled[labels]
        if shared.served == served:
            return shared
        return replace(base, served=served, stats=shared.stats, batcher=batcher)

    def refresh(self) -> bool:
        """Load the latest revision if it is newer than the one being served; True if swapped."""
        latest = self._latest()
        if latest is None:
            return False
        revision, strategy, raw_routes = latest
        if self.table is not None and revision == self.table.revision and self.routes_file is None:
            return False
        routes = [ServedVersion(**r) for r in raw_routes]
        try:
            live = [r for r in routes if r.weight > 0]
            # Canary routes last, so sticky keys on the canary stay there as its share grows.
            live.sort(key=lambda r: r.role == "canary")
            loaded_live = tuple(self._loaded(r) for r in live)
            shadows = tuple(self._loaded(r) for r in routes if r.role == "shadow")
            standby = tuple(self._loaded(r) for r in routes if r.role == "standby")
        except Exception as exc:  # keep serving the old table; /health says why
            self.last_reload_error = f"revision {revision}: {type(exc).__name__}: {exc}"
            log.error("reload failed, still serving the previous table: %s", self.last_reload_error)
            return False
        prefixes = {
            v.served.version: _prefix(self.model_name, v.served, revision) for v in loaded_live
        }
        table = RoutingTable(
            revision,
            strategy,
            loaded_live,
            tuple(r.weight for r in live),
            shadows,
            standby,
            prefixes,
        )
        for v in loaded_live + shadows:  # warm up: the first real request pays no lazy init
            row = v.warmup_input()
            if row is not None:
                v.predict(row)
        self.table = table
        # Taken after the swap: a request the old table served is never counted for the new
        # step (the few the new one serves in between are left out, never added).
        self._revision_base = (revision, {id(v.stats): _counts(v.stats) for v in table.versions})
        self.last_reload_error = None
        self.reloads += 1
        log.info(
            "serving revision %s (%s): %s",
            revision,
            strategy,
            {v.served.version: w for v, w in zip(loaded_live, table.weights, strict=True)},
        )
        return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # the DB may be briefly unavailable; the next tick retries
                log.exception("routing table poll failed")
            self.write_snapshot()

    def write_snapshot(self) -> None:
        """With several workers: this one's counters, for the others' /health and /metrics."""
        if self.worker_dir is None:
            return
        from core.serving.workers import note_siblings, snapshot, write_snapshot

        note_siblings()
        try:
            write_snapshot(self.worker_dir, snapshot(self))
        except OSError:  # a full disk must not stop serving; /health shows the stale copy
            log.exception("could not write this worker's counters")

    # Metrics across workers -------------------------------------------------------------
    def _peers(self) -> list[dict[str, Any]]:
        """The other workers' snapshots, read once per scrape (its three families ask in
        turn; snapshots change only once per poll tick, so 0.1 s of reuse loses nothing)."""
        from core.serving.workers import read_peers

        if self.worker_dir is None:
            return []
        now = time.monotonic()
        if self._peer_cache is None or now - self._peer_cache[0] > 0.1:
            self._peer_cache = (now, read_peers(self.worker_dir, os.getpid()))
        return self._peer_cache[1]

    def _metric_versions(self) -> list[Any]:
        own = list(self._labelled.values())
        if self.worker_dir is None:
            return own
        from core.serving.workers import peer_versions

        return own + peer_versions(self._peers())

    def _metric_errors(self) -> dict[str, int]:
        if self.worker_dir is None:
            return self.errors
        from core.serving.workers import merge_errors

        return merge_errors(self.errors, self._peers())

    def _metric_extra(self) -> dict[str, tuple[str, float]]:
        if self.worker_dir is None:
            return self._extra_counters()
        from core.serving.workers import merge_extra

        return merge_extra(self._extra_counters(), self._peers())

    def start_background(self) -> None:
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="routing-poll", daemon=True)
        self._poller.start()
        self.log.start()
        self.shadow.start()
        self.feedback.start()

    def stop_background(self) -> None:
        self._stop.set()
        self.shadow.stop()
        self.log.stop()
        self.feedback.stop()

    # Reporting ------------------------------------------------------------------------
    def _extra_counters(self) -> dict[str, tuple[str, float]]:
        return {
            "prediction_log_written": (
                "Prediction log rows written to the state DB",
                self.log.written,
            ),
            "prediction_log_dropped": (
                "Prediction log rows dropped (buffer full)",
                self.log.dropped,
            ),
            "prediction_log_flush_errors": ("Failed prediction log flushes", self.log.flush_errors),
            "prediction_log_pending": (
                "Prediction log rows waiting to be written",
                self.log.pending,
            ),
            "shadow_mirror_dropped": (
                "Mirror copies dropped (shadow queue full)",
                self.shadow.dropped,
            ),
            "routing_table_reloads": ("Routing tables loaded", self.reloads),
        }

    def health(self) -> dict[str, Any]:
        """This gateway's /health; with several workers, all of them merged."""
        if self.worker_dir is None:
            return self.local_health()
        from core.serving.workers import merge_health, read_peers

        return merge_health(self.local_health(), read_peers(self.worker_dir, os.getpid()))

    def local_health(self) -> dict[str, Any]:
        table = self.table
        versions = []
        if table is not None:
            weights = dict(zip((v.served.version for v in table.live), table.weights, strict=True))
            base_rev, bases = self._revision_base or (None, {})
            for v in table.versions:
                s, st = v.served, v.stats
                now, base = _counts(st), bases.get(id(st))
                versions.append(
                    {
                        "version": s.version,
                        "weight": weights.get(s.version, 0.0),
                        "role": s.role,
                        "slot": s.slot,
                        "runtime": v.runtime,
                        "implementation_status": s.implementation_status,
                        "honesty_compliant": v.honesty_compliant,
                        "requests": st.requests,
                        "server_errors": st.server_errors,
                        "rejected": st.rejected,
                        "timeouts": st.timeouts,
                        # The same counters on the revision being served (None while a swap
                        # is in progress): a rollout step is judged on these.
                        "this_revision": {k: n - base[k] for k, n in now.items()}
                        if base is not None and base_rev == table.revision
                        else None,
                        "shadow": {
                            "requests": st.shadow_requests,
                            "errors": st.shadow_errors,
                            "agreements": st.shadow_agreements,
                        }
                        if s.role == "shadow"
                        else None,
                    }
                )
        served = [v for v in versions if v["weight"] > 0]
        return {
            "status": "ok" if table else "no_live_version",
            "model_name": self.model_name,
            "environment": self.environment,
            "revision": table.revision if table else None,
            "strategy": table.strategy if table else None,
            "versions": versions,
            "honesty_compliant": bool(served) and all(v["honesty_compliant"] for v in served),
            "last_reload_error": self.last_reload_error,
            "requires_token": self.token_digest is not None,
            "rejected": dict(self.errors),
            "prediction_log": {
                "written": self.log.written,
                "pending": self.log.pending,
                "dropped": self.log.dropped,
                "flush_errors": self.log.flush_errors,
                "last_error": self.log.last_error,
            },
            "shadow_dropped": self.shadow.dropped,
            "batching": {
                "enabled": self.batching,
                "window_ms": self.batch_window_s * 1000,
                "max_batch": self.max_batch,
                "batches": sum(b.batches for b in self._batchers.values()),
                "rows": sum(b.batched_rows for b in self._batchers.values()),
            },
            "server": self.server_info,
            "pid": os.getpid(),
        }


def _counts(st: Any) -> dict[str, int]:
    return {
        "requests": st.requests,
        "server_errors": st.server_errors,
        "rejected": st.rejected,
        "timeouts": st.timeouts,
        "shadow_requests": st.shadow_requests,
        "shadow_errors": st.shadow_errors,
    }


def _prefix(model_name: str, s: ServedVersion, revision: int) -> bytes:
    head = orjson.dumps(
        {
            "model_name": model_name,
            "model_version": s.version,
            "implementation_status": s.implementation_status,
            "accuracy_claim": s.accuracy_claim,
            "validation_status": s.validation_status,
            "revision": revision,
        }
    )
    return head[:-1] + b","


if __name__ == "__main__":  # ``python -m core.serving.gateway`` (its flags: gateway_cli)
    from core.serving.gateway_cli import main

    main()
