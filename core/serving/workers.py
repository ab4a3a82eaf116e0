"""Worker processes of one gateway: N uvicorn workers on one port, seen as one gateway.

With ``--workers N`` (N > 1) the gateway's main process is uvicorn's own supervisor: it binds
the port once and spawns N worker processes, each building its own ``Gateway`` (routing-table
poll, prediction log writer, batchers, shadow mirror) from the same flags, so a rollout or
rollback reaches every worker through the state DB as it reaches one.

Each worker writes a snapshot of its counters to ``<gateway dir>/workers/<pid>.json`` on every
poll tick (written whole, then renamed). ``/health`` and ``/metrics``, answered by whichever
worker the connection reached, merge that worker's live counters with the others' snapshots:
a rollout step is judged on all the traffic, and Prometheus scrapes one gateway, not one
worker at random. The merged revision is the lowest one a live worker serves, so a rollout
check waits until every worker has switched. A worker that died keeps its last snapshot: its
counts stay counted (as prometheus_client's multiprocess mode keeps a dead process's files)
but it no longer votes on the revision.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

WORKER_CONFIG_ENV = "MODELOPS_GATEWAY_WORKER_CONFIG"
SNAPSHOT_DIR = "workers"
_COUNTS = ("requests", "server_errors", "rejected", "timeouts")
_REVISION_COUNTS = (*_COUNTS, "shadow_requests", "shadow_errors")
_STAT_FIELDS = (
    "requests",
    "server_errors",
    "rejected",
    "timeouts",
    "latency_sum",
    "shadow_requests",
    "shadow_errors",
    "shadow_agreements",
    "shadow_comparisons",
)


# cgroup v2's CPU limit of this process's container ("max 100000" when unlimited).
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(cpu_max: Path | None = None) -> int | None:
    """Whole CPUs the container's quota gives (rounded up, at least 1); None without a limit
    or where there is no cgroup v2 file (not Linux, not a container)."""
    try:
        quota, period = (cpu_max or CGROUP_CPU_MAX).read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return max(1, -(-q // p)) if q > 0 and p > 0 else None


def default_workers() -> int:
    """The number of cores the machine gives this process: the ones it may run on, and no
    more than its container's CPU limit (a pod limited to 1 CPU on a 32-core node gets 1)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        cores = max(1, os.cpu_count() or 1)
    limit = cgroup_cpu_limit()
    return min(cores, limit) if limit else cores


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0: one worker per core; otherwise the number asked for (at least 1)."""
    if workers is None or workers == 0:
        return default_workers()
    if workers < 0:
        raise ValueError(f"workers must be 0 (one per core) or a positive number, not {workers}")
    return workers


# Snapshots ------------------------------------------------------------------------------
def snapshot(gateway: Any) -> dict[str, Any]:
    """What the other workers need of this one: its health and its metric counters."""
    versions = []
    for v in list(gateway._labelled.values()):
        s, st = v.served, v.stats
        versions.append(
            {
                "version": s.version,
                "implementation_status": s.implementation_status,
                "role": s.role,
                "honesty_compliant": v.honesty_compliant,
                "latency_buckets": list(st.latency_buckets),
                **{f: getattr(st, f) for f in _STAT_FIELDS},
            }
        )
    return {
        "pid": os.getpid(),
        "health": gateway.local_health(),
        "versions": versions,
        "errors": dict(gateway.errors),
        "extra": {k: v for k, (_doc, v) in gateway._extra_counters().items()},
    }


_SNAPSHOT_NAME = re.compile(r"\.?[0-9]{1,10}\.json(\.tmp)?")


def write_snapshot(folder: Path, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{data['pid']}.json"
    tmp = folder / f".{data['pid']}.json.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, final)


# Worker pids seen alive as children of this worker's supervisor: a snapshot counts only if
# one of them wrote it (a file another process put in the folder is not a worker's count).
_SIBLINGS: set[int] = set()


def _sibling(pid: int) -> bool | None:
    """True: a live child of our supervisor; False: a live other process; None: gone."""
    import psutil

    try:
        return psutil.Process(pid).ppid() == os.getppid()
    except psutil.NoSuchProcess:
        return None


def note_siblings() -> None:
    """Remember the supervisor's live children (called on every poll tick)."""
    import psutil

    try:
        _SIBLINGS.update(c.pid for c in psutil.Process(os.getppid()).children())
    except psutil.Error:  # the supervisor is gone: this worker is about to stop too
        pass


def read_peers(folder: Path, own_pid: int) -> list[dict[str, Any]]:
    """The other workers' latest snapshots, each with ``alive`` (its process still runs).
    A file whose pid is not, and never was seen as, a sibling worker is ignored."""
    out = []
    try:
        files = sorted(folder.glob("[0-9]*.json"))
    except OSError:
        return out
    for f in files:
        try:
            pid = int(f.stem)
            if pid == own_pid:
                continue
            data = json.loads(f.read_text())
        except (OSError, ValueError):  # being replaced right now: the next read has it
            continue
        state = _sibling(pid)
        if state is True:
            _SIBLINGS.add(pid)
        elif state is False or pid not in _SIBLINGS:
            continue
        if data.get("pid") != pid:
            continue
        data["alive"] = state is True
        out.append(data)
    return out


def clear_snapshots(folder: Path) -> None:
    """At gateway start: snapshots of an earlier run's workers are not this run's counts.
    Only names ``write_snapshot`` writes (``PID.json``, ``.PID.json.tmp``) are removed: any
    other file in the folder is not ours to delete."""
    if folder.is_dir():
        for f in folder.iterdir():
            if _SNAPSHOT_NAME.fullmatch(f.name) and (f.is_file() or f.is_symlink()):
                f.unlink(missing_ok=True)  # a symlink by that name goes; never its target


# Merging --------------------------------------------------------------------------------
def merge_health(own: dict[str, Any], peers: list[dict[str, Any]]) -> dict[str, Any]:
    """One gateway's /health from the answering worker's live view and the others'
    snapshots (see the module docstring)."""
    entries = [(own, True)] + [(p["health"], bool(p["alive"])) for p in peers]
    healths = [h for h, _ in entries]
    live = [h for h, alive in entries if alive]
    revisions = [h.get("revision") for h in live]
    revision = None if None in revisions else min(revisions)
    out = dict(own)
    out["revision"] = revision
    out["versions"] = [_merge_version(v, entries, revision) for v in own["versions"]]
    out["rejected"] = _sum_dicts(h.get("rejected") or {} for h in healths)
    log = dict(own["prediction_log"])
    for k in ("written", "pending", "dropped", "flush_errors"):
        log[k] = sum(h["prediction_log"][k] for h in healths)
    log["last_error"] = next(
        (h["prediction_log"]["last_error"] for h in healths if h["prediction_log"]["last_error"]),
        None,
    )
    out["prediction_log"] = log
    out["shadow_dropped"] = sum(h.get("shadow_dropped", 0) for h in healths)
    out["batching"] = {
        **own["batching"],
        "batches": sum(h["batching"]["batches"] for h in healths),
        "rows": sum(h["batching"]["rows"] for h in healths),
    }
    out["last_reload_error"] = next(
        (h["last_reload_error"] for h in live if h.get("last_reload_error")), None
    )
    out["status"] = next((h["status"] for h in live if h.get("status") != "ok"), own["status"])
    out["honesty_compliant"] = all(h.get("honesty_compliant") for h in live)
    out["workers"] = [
        {"pid": h.get("pid"), "alive": alive, "revision": h.get("revision")} for h, alive in entries
    ]
    return out


def _merge_version(
    mine: dict[str, Any], entries: list[tuple[dict[str, Any], bool]], revision: int | None
) -> dict[str, Any]:
    same = [v for h, _ in entries for v in h.get("versions", []) if v["version"] == mine["version"]]
    out = dict(mine)
    for k in _COUNTS:
        out[k] = sum(v[k] for v in same)
    if mine.get("shadow") is not None:
        out["shadow"] = {
            k: sum((v.get("shadow") or {}).get(k, 0) for v in same)
            for k in ("requests", "errors", "agreements")
        }
    # Counts on the revision being served: every live worker must report them for it (one
    # still swapping reports None), and a dead worker's count on that revision still counts.
    out["this_revision"] = None
    if revision is None:
        return out
    on_revision = []
    for h, alive in entries:
        v = next((x for x in h.get("versions", []) if x["version"] == mine["version"]), None)
        counts = v.get("this_revision") if v and h.get("revision") == revision else None
        if counts is None:
            if alive:
                return out
            continue
        on_revision.append(counts)
    out["this_revision"] = {k: sum(c.get(k, 0) for c in on_revision) for k in _REVISION_COUNTS}
    return out


def _sum_dicts(dicts: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            out[k] = out.get(k, 0) + n
    return out


def peer_versions(peers: list[dict[str, Any]]) -> list[SimpleNamespace]:
    """The other workers' per-version counters, shaped as the metrics collector reads a
    loaded version (``.served``, ``.stats``, ``.honesty_compliant``)."""
    out = []
    for p in peers:
        for v in p.get("versions", []):
            out.append(
                SimpleNamespace(
                    served=SimpleNamespace(
                        version=v["version"],
                        implementation_status=v["implementation_status"],
                        role=v["role"],
                    ),
                    stats=SimpleNamespace(
                        latency_buckets=v["latency_buckets"],
                        **{f: v[f] for f in _STAT_FIELDS},
                    ),
                    honesty_compliant=v["honesty_compliant"],
                )
            )
    return out


def merge_errors(own: dict[str, int], peers: list[dict[str, Any]]) -> dict[str, int]:
    return _sum_dicts([own, *(p.get("errors", {}) for p in peers)])


def merge_extra(own: dict[str, tuple[str, float]], peers: list[dict[str, Any]]) -> dict:
    out = dict(own)
    for name, (doc, value) in own.items():
        out[name] = (doc, value + sum(p.get("extra", {}).get(name, 0) for p in peers))
    return out


def worker_app() -> Any:
    """uvicorn's factory in each worker process: the gateway built from the flags the main
    process put in ``MODELOPS_GATEWAY_WORKER_CONFIG``."""
    from core.serving.gateway_cli import build_gateway

    config = json.loads(os.environ[WORKER_CONFIG_ENV])
    return build_gateway(config, worker_dir=Path(config["worker_dir"]))
