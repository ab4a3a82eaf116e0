"""What a run ran on: package versions, git commit and dirty flag, Python, OS and hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from typing import Any

PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "mlflow",
    "chromadb",
    "openai",
    "xgboost",
    "xgboost-cpu",
    "lightgbm",
    "torch",
    "tiktoken",
    "modelops-agents",
)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The working directory's commit and whether it has uncommitted changes."""
    commit = (_git("rev-parse", "HEAD") or "").strip() or None
    if commit is None:
        return {"commit": None, "dirty": None}
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status.strip()) if status is not None else None}


def _memory_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except Exception:  # psutil missing or unsupported platform
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def capture_environment() -> dict[str, Any]:
    """A JSON-able description of this process's environment (no environment variables:
    they may hold secrets)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "os": f"{platform.system()} {platform.release()}",
        "hardware": {
            "machine": platform.machine(),
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "memory_bytes": _memory_bytes(),
            "gpu": "none detected"
            if not os.path.exists("/dev/nvidia0")
            else "nvidia device present",
        },
        "packages": versions,
        "git": git_state(),
    }


def environment_tags(env: dict[str, Any]) -> dict[str, str]:
    """The headline facts as run tags (the full record is the environment.json artifact)."""
    tags = {
        "env.python": env["python"],
        "env.os": env["os"],
        "env.cpu_count": str(env["hardware"]["cpu_count"]),
    }
    git = env["git"]
    if git["commit"]:
        tags["git_commit"] = git["commit"]
        tags["git_dirty"] = str(git["dirty"]).lower()
    for pkg in ("scikit-learn", "mlflow", "numpy", "pandas"):
        if pkg in env["packages"]:
            tags[f"env.{pkg}"] = env["packages"][pkg]
    return tags
