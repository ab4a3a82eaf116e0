"""A fake OpenAI-compatible fine-tuning API on 127.0.0.1 for tests: files, jobs, events,
checkpoints and cancel, driven by the real ``openai`` client over HTTP.

Each job's outcome is scripted (``enqueue_outcome``: succeeded, failed, or ``hold``, which
stays running until cancelled); every GET of a job moves it one state along
validating_files -> queued -> running -> outcome, adding events and, while running, a
checkpoint with metrics, as the real API reports them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

import pytest

FLOW = ("validating_files", "queued", "running")


class FakeFineTuningServer:
    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.checkpoints: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._outcomes: deque[str] = deque()
        self._step: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def enqueue_outcome(self, outcome: str) -> None:
        """The outcome of the next created job: ``succeeded`` (default), ``failed``, ``hold``."""
        assert outcome in ("succeeded", "failed", "hold")
        self._outcomes.append(outcome)

    # State machine ----------------------------------------------------------------------
    def _id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):04d}"

    def _event(self, job_id: str, message: str, *, level: str = "info", data: Any = None) -> None:
        self.events[job_id].append(
            {
                "id": self._id("ftevent"),
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": "metrics" if data else "message",
                "data": data or {},
            }
        )

    def create_job(self, body: dict[str, Any]) -> dict[str, Any]:
        job_id = self._id("ftjob")
        hp = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.0}
        hp.update(body.get("hyperparameters") or {})
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": hp,
            "model": body["model"],
            "organization_id": "org-fake",
            "result_files": [],
            "seed": body.get("seed") or 0,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "suffix": body.get("suffix"),
            "metadata": body.get("metadata"),
            "outcome": self._outcomes.popleft() if self._outcomes else "succeeded",
        }
        self.jobs[job_id] = job
        self.events[job_id] = []
        self.checkpoints[job_id] = []
        self._step[job_id] = 0
        self._event(job_id, f"Validating training file: {body['training_file']}")
        return job

    def advance(self, job_id: str) -> None:
        job = self.jobs[job_id]
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        i = FLOW.index(job["status"])
        if job["status"] == "running":
            step = self._step[job_id] = self._step[job_id] + 1
            if job["outcome"] == "hold" or step < 2:
                self._checkpoint(job_id, step)
                return
            self._finish(job)
            return
        job["status"] = FLOW[i + 1]
        self._event(
            job_id,
            {
                "queued": "Files validated, moving job to queued state",
                "running": "Fine-tuning job started",
            }[job["status"]],
        )

    def _checkpoint(self, job_id: str, step: int) -> None:
        job = self.jobs[job_id]
        loss = round(1.0 / (step + 1), 4)
        metrics = {
            "step": float(step * 10),
            "train_loss": loss,
            "train_mean_token_accuracy": round(1 - loss / 2, 4),
            "valid_loss": round(loss * 1.1, 4),
            "valid_mean_token_accuracy": round(1 - loss / 1.8, 4),
        }
        self.checkpoints[job_id].append(
            {
                "id": self._id("ftckpt"),
                "object": "fine_tuning.job.checkpoint",
                "created_at": int(time.time()),
                "fine_tuned_model_checkpoint": f"ft:{job['model']}:fake::{job_id}:ckpt-step-{step * 10}",
                "fine_tuning_job_id": job_id,
                "metrics": metrics,
                "step_number": step * 10,
            }
        )
        self._event(job_id, f"Step {step * 10}: training loss={loss}", data=metrics)

    def _finish(self, job: dict[str, Any]) -> None:
        job["finished_at"] = int(time.time())
        if job["outcome"] == "failed":
            job["status"] = "failed"
            job["error"] = {
                "code": "invalid_training_file",
                "message": "The job failed: training loss diverged",
                "param": "training_file",
            }
            self._event(job["id"], "The job failed: training loss diverged", level="error")
            return
        job["status"] = "succeeded"
        suffix = job.get("suffix") or "custom"
        job["fine_tuned_model"] = f"ft:{job['model']}:fake:{suffix}:{job['id']}"
        job["trained_tokens"] = 1234
        job["result_files"] = ["file-result-fake"]
        self._event(job["id"], f"New fine-tuned model created: {job['fine_tuned_model']}")
        self._event(job["id"], "The job has successfully completed")

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if k not in ("outcome", "suffix")}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def fake(self) -> FakeFineTuningServer:
        return self.server.fake  # type: ignore[attr-defined]

    def _send(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        kind = {400: "invalid_request_error", 404: "invalid_request_error"}.get(
            status, "server_error"
        )
        self._send(
            status, {"error": {"message": message, "type": kind, "param": None, "code": None}}
        )

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        fake = self.fake
        fake.requests.append(("GET", url.path))
        with fake._lock:
            if parts[:2] == ["v1", "files"] and len(parts) == 3:
                f = fake.files.get(parts[2])
                return (
                    self._send(200, f)
                    if f
                    else self._error(404, f"No such File object: {parts[2]}")
                )
            if parts[:3] == ["v1", "fine_tuning", "jobs"]:
                if len(parts) == 3:
                    data = [fake.public(j) for j in reversed(fake.jobs.values())]
                    return self._send(200, {"object": "list", "data": data, "has_more": False})
                job = fake.jobs.get(parts[3])
                if job is None:
                    return self._error(404, f"Could not find fine tune: {parts[3]}")
                if len(parts) == 4:
                    fake.advance(job["id"])
                    return self._send(200, fake.public(job))
                limit = int(parse_qs(url.query).get("limit", ["20"])[0])
                if parts[4] == "events":
                    data = list(reversed(fake.events[job["id"]]))[:limit]
                    return self._send(200, {"object": "list", "data": data, "has_more": False})
                if parts[4] == "checkpoints":
                    data = list(reversed(fake.checkpoints[job["id"]]))[:limit]
                    return self._send(
                        200,
                        {
                            "object": "list",
                            "data": data,
                            "has_more": False,
                            "first_id": None,
                            "last_id": None,
                        },
                    )
        self._error(404, f"no route GET {url.path}")

    def do_POST(self) -> None:
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        fake = self.fake
        fake.requests.append(("POST", url.path))
        raw = self._body()
        with fake._lock:
            if parts == ["v1", "files"]:
                return self._upload(raw)
            if parts == ["v1", "fine_tuning", "jobs"]:
                body = json.loads(raw or b"{}")
                if body.get("training_file") not in fake.files:
                    return self._error(400, f"invalid training_file: {body.get('training_file')}")
                if body.get("validation_file") and body["validation_file"] not in fake.files:
                    return self._error(400, f"invalid validation_file: {body['validation_file']}")
                return self._send(200, fake.public(fake.create_job(body)))
            if (
                parts[:3] == ["v1", "fine_tuning", "jobs"]
                and len(parts) == 5
                and parts[4] == "cancel"
            ):
                job = fake.jobs.get(parts[3])
                if job is None:
                    return self._error(404, f"Could not find fine tune: {parts[3]}")
                if job["status"] in ("succeeded", "failed", "cancelled"):
                    return self._error(400, f"Job {job['id']} has already {job['status']}")
                job["status"] = "cancelled"
                job["finished_at"] = int(time.time())
                fake._event(job["id"], "Job was cancelled")
                return self._send(200, fake.public(job))
        self._error(404, f"no route POST {url.path}")

    def _upload(self, raw: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + raw
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        if "file" not in fields or fields.get("purpose", (None, b""))[1] != b"fine-tune":
            return self._error(400, "a file and purpose=fine-tune are required")
        filename, data = fields["file"]
        file_id = self.fake._id("file")
        obj = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": "fine-tune",
            "status": "processed",
        }
        self.fake.files[file_id] = obj
        self.fake.file_bytes[file_id] = data
        self._send(200, obj)


@pytest.fixture
def finetune_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFineTuningServer]:
    """A started fake fine-tuning API with OPENAI_BASE_URL / OPENAI_API_KEY pointing at it."""
    with FakeFineTuningServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-finetune")
        yield server
