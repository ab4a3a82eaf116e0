"""Nothing is deleted or overwritten that we did not write: a re-render or a forced draft
touches a file only if it is inside the folder (plain path, no symlink on the way) and its
bytes match the digest recorded when we wrote it. A planted marker is data, never an
instruction (the autonomy issue, attack 5)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core import owned_files
from core.errors import Conflict
from core.owned_files import MARKER, apply, plain_relpath, plan_writes
from tests.helpers.cli import run_agent

HINT = "Choose a new folder."


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _plant(folder: Path, marker: str, entries: dict[str, str]) -> None:
    """Add entries (path -> digest) to the folder's marker, as someone with write access could."""
    body = json.loads((folder / marker).read_text())
    body["files"].update(entries)
    (folder / marker).write_text(json.dumps(body))


def _snapshot(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


# The rule itself ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", ["", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "a/./b", "a\0b", "a\\b", 3]
)
def test_only_plain_relative_paths_count(bad):
    assert not plain_relpath(bad)


def test_plain_paths_are_accepted():
    assert all(plain_relpath(p) for p in ("a", "k8s/service.yaml", ".hidden", "models/v1/x.onnx"))


def test_a_planted_marker_deletes_nothing_outside_and_nothing_changed(tmp_path, monkeypatch):
    root = tmp_path / "out"
    apply(plan_writes(root, {"a.txt": b"1", "old.txt": b"2", "edited.txt": b"3"}), hint=HINT)
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    secret = outside / "secret.txt"
    secret.write_text("secret")
    (root / "link.txt").symlink_to(secret)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "edited.txt").write_text("a person's edit")
    # Entries an attacker can compute: the right digests of files outside the folder.
    _plant(
        root,
        MARKER,
        {
            "../victim.txt": _sha(victim),
            str(victim): _sha(victim),
            "link.txt": _sha(secret),
            "escape/secret.txt": _sha(secret),
        },
    )
    stated: list[str] = []
    real_state = owned_files._state
    monkeypatch.setattr(
        owned_files, "_state", lambda fd, rel: stated.append(rel) or real_state(fd, rel)
    )
    plan = apply(plan_writes(root, {"a.txt": b"1"}, prune=True), hint=HINT)
    assert plan.removed == ["old.txt"] and not (root / "old.txt").exists()
    assert victim.read_text() == "victim" and secret.read_text() == "secret"
    assert (root / "link.txt").is_symlink() and (root / "escape").is_symlink()
    assert (root / "edited.txt").read_text() == "a person's edit"
    assert plan.kept == ["edited.txt", "escape", "link.txt"]
    assert set(plan.ignored) == {"../victim.txt", str(victim), "link.txt", "escape/secret.txt"}
    # An entry that is not a plain path is never looked up at all.
    assert "../victim.txt" not in stated and str(victim) not in stated
    assert "kept 3 files we did not write or that changed since" in owned_files.kept_message(plan)
    recorded = json.loads((root / MARKER).read_text())["files"]
    assert recorded == {"a.txt": hashlib.sha256(b"1").hexdigest()}


def test_a_needed_write_onto_a_file_not_ours_refuses_everything(tmp_path):
    root = tmp_path / "out"
    apply(plan_writes(root, {"a.txt": b"1", "b.txt": b"2"}), hint=HINT)
    (root / "b.txt").write_text("edited")
    (root / "mine.txt").write_text("a person's")
    marker = (root / MARKER).read_bytes()
    for rel in ("b.txt", "mine.txt"):
        plan = plan_writes(root, {"a.txt": b"new", rel: b"new"}, prune=True)
        with pytest.raises(Conflict, match=rf"{rel} \((changed since|not written by)") as exc:
            apply(plan, hint=HINT)
        assert exc.value.hint == HINT
    assert (root / "a.txt").read_bytes() == b"1" and (root / "b.txt").read_text() == "edited"
    assert (root / "mine.txt").read_text() == "a person's" and (
        root / MARKER
    ).read_bytes() == marker


def test_a_symlink_on_the_way_or_as_the_marker_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "out"
    root.mkdir()
    (root / "k8s").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Conflict, match="symlink"):
        apply(plan_writes(root, {"k8s/a.yaml": b"x"}), hint=HINT)
    (root / "k8s").unlink()
    (root / MARKER).symlink_to(outside / "m.json")
    with pytest.raises(Conflict, match="symlink"):
        apply(plan_writes(root, {"k8s/a.yaml": b"x"}), hint=HINT)
    assert not any(outside.iterdir()) and not (root / "k8s").exists()


def test_an_old_format_marker_proves_nothing(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    (root / "routes.json").write_text("old")
    (root / "stale.txt").write_text("old")
    (root / ".modelops-bundle.json").write_text(json.dumps({"files": ["routes.json", "stale.txt"]}))
    plan = plan_writes(root, {"routes.json": b"new"}, prune=True, marker=".modelops-bundle.json")
    with pytest.raises(Conflict, match="older format") as exc:
        apply(plan, hint="Render into a new folder: `agent deploy render NAME --out NEW_DIR`.")
    assert "new folder" in exc.value.hint
    assert plan.stale == {} and list(plan.conflicts) == ["routes.json"]
    assert plan.kept == ["stale.txt"] and (root / "routes.json").read_text() == "old"
    ok = apply(
        plan_writes(root, {"other.json": b"x"}, prune=True, marker=".modelops-bundle.json"),
        hint=HINT,
    )
    assert ok.removed == [] and (root / "stale.txt").read_text() == "old"


def test_a_crash_midway_leaves_a_folder_a_rerun_completes(tmp_path, monkeypatch):
    root = tmp_path / "out"
    apply(plan_writes(root, {"a.txt": b"1", "b.txt": b"1"}), hint=HINT)
    real = owned_files._replace
    calls = []

    def crash(dir_fd, name, data, **kw):
        calls.append(name)
        if name == "b.txt":
            raise OSError("disk gone")
        return real(dir_fd, name, data, **kw)

    monkeypatch.setattr(owned_files, "_replace", crash)
    with pytest.raises(OSError):
        apply(plan_writes(root, {"a.txt": b"2", "b.txt": b"2"}), hint=HINT)
    assert (root / "a.txt").read_bytes() == b"2" and (root / "b.txt").read_bytes() == b"1"
    monkeypatch.setattr(owned_files, "_replace", real)
    plan = apply(plan_writes(root, {"a.txt": b"2", "b.txt": b"2"}), hint=HINT)
    assert sorted(plan.overwrite) == ["a.txt", "b.txt"] and (root / "b.txt").read_bytes() == b"2"


# Through the tools -----------------------------------------------------------------------
def _deploy(rt, name: str, version: str) -> None:
    from core.deployment import ServedVersion

    info = rt.services.registry.get(name, version)
    rt.services.deployments.deploy(
        name,
        ServedVersion(
            version=version,
            weight=100,
            artifact_uri=info.artifact_uri,
            artifact_sha256=info.artifact_sha256,
        ),
        actor="test",
        environment="staging",
    )


@pytest.mark.slow
def test_forced_re_render_as_an_architect_keeps_what_is_not_ours(
    registered, home, tmp_path, capsys
):
    rt, name, (v1, v2) = registered["rt"], registered["name"], registered["versions"]
    carol = rt.services.policy.human("carol")  # Architect: deploy:read is all render needs
    args = {"name": name, "source": "staging", "output_dir": "bundle"}
    _deploy(rt, name, v1)
    rt.dispatcher.call_or_raise(carol, "render_deployment", args)
    bundle = tmp_path / "bundle"
    marker = ".modelops-bundle.json"
    pin = home / "policy" / "pin.json"
    victim = tmp_path / "victim.txt"
    victim.write_text("victim")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    target = outside / "target.txt"
    target.write_text("target")
    (bundle / "k8s" / "extra.yaml").symlink_to(target)
    guarded = _snapshot(pin, victim, target)
    _plant(
        bundle,
        marker,
        {
            "../victim.txt": _sha(victim),
            str(pin): _sha(pin),
            "k8s/extra.yaml": _sha(target),
        },
    )
    # A file of ours the user edited and that the next render no longer needs.
    edited = bundle / f"routes-v{v1}.json"
    edited.write_text("edited by a person")
    unchanged_old = sorted(p for p in (bundle / "models" / f"v{v1}").iterdir())
    assert unchanged_old
    _deploy(rt, name, v2)  # the live routes now serve v2 only: v1's files are stale

    out = rt.dispatcher.call_or_raise(carol, "render_deployment", {**args, "force": True})
    assert _snapshot(pin, victim, target) == guarded
    assert (
        bundle / "k8s" / "extra.yaml"
    ).is_symlink() and edited.read_text() == "edited by a person"
    assert not any(p.exists() for p in unchanged_old)  # genuine stale files of ours: removed
    assert (bundle / f"routes-v{v2}.json").is_file()
    assert {f"models/v{v1}/{p.name}" for p in unchanged_old} <= set(out["removed"])
    assert set(out["kept"]) == {f"routes-v{v1}.json", "k8s/extra.yaml"}
    assert set(out["ignored"]) == {"../victim.txt", str(pin), "k8s/extra.yaml"}
    assert "kept 2 files we did not write or that changed since" in out["kept_note"]
    assert rt.services.policy_digest  # the pinned policy still loads, digest-checked

    # An unchanged bundle re-renders; the CLI shows what it kept.
    code, stdout, stderr = run_agent(
        capsys,
        "deploy",
        "render",
        name,
        "--from",
        "staging",
        "--out",
        "bundle",
        "--force",
        "--as",
        "carol",
    )
    assert code == 0, stderr
    assert "kept 2 files we did not write or that changed since: " in " ".join(stdout.split())
    assert _snapshot(pin, victim, target) == guarded and edited.read_text() == "edited by a person"

    # A file the render must write, edited since: the whole render is refused, nothing written.
    readme = bundle / "README.md"
    readme.write_text("my notes")
    before = _snapshot(bundle / marker, bundle / "routes.json")
    res = rt.dispatcher.call(carol, "render_deployment", {**args, "force": True})
    assert not res.ok and res.error.code == "conflict"
    assert "README.md (changed since we wrote it)" in res.error.message
    assert "--out NEW_DIR" in res.error.hint
    assert readme.read_text() == "my notes" and _snapshot(*before) == before


@pytest.mark.slow
def test_forced_drafts_overwrite_only_our_unchanged_files(registered, tmp_path):
    from tests.test_design_pipeline import _notebook

    rt, name, (v1, v2) = registered["rt"], registered["name"], registered["versions"]
    carol = rt.services.policy.human("carol")
    _notebook(tmp_path / "nb.ipynb")
    drafts = {
        "draft_runbook": ({"kind": "rollback"}, "rollback-runbook.md"),
        "draft_monitoring_config": ({"model_id": f"{name}/{v2}"}, f"monitoring-{name}.yaml"),
        "scaffold_serving_api": ({"model_id": f"{name}/{v1}"}, "app.py"),
        "draft_training_pipeline": ({"notebook": "nb.ipynb"}, "train.py"),
    }
    for tool, (args, edit) in drafts.items():
        folder = tmp_path / "d" / tool
        args = {**args, "out_dir": str(folder)}
        rt.dispatcher.call_or_raise(carol, tool, args)
        (folder / "notes.md").write_text("a person's notes")
        again = rt.dispatcher.call_or_raise(carol, tool, {**args, "force": True})  # unchanged
        assert again["kept"] == ["notes.md"], tool
        assert "kept 1 files we did not write or that changed since: notes.md" in again["message"]
        (folder / edit).write_text("edited by a person")
        others = _snapshot(*(p for p in folder.rglob("*") if p.is_file() and p.name != edit))
        res = rt.dispatcher.call(carol, tool, {**args, "force": True})
        assert not res.ok and res.error.code == "invalid_input", tool
        assert f"{edit} (changed since we wrote it)" in res.error.message, tool
        assert "new folder" in res.error.hint
        assert (folder / edit).read_text() == "edited by a person"
        assert _snapshot(*others) == others, tool  # refused as a whole: nothing else written


def test_gateway_start_clears_only_worker_snapshots(tmp_path):
    from core.serving.workers import clear_snapshots, write_snapshot

    folder = tmp_path / "workers"
    write_snapshot(folder, {"pid": 4242})
    (folder / ".4243.json.tmp").write_text("{}")
    (folder / "notes.txt").write_text("not ours")
    target = tmp_path / "target.json"
    target.write_text("keep")
    (folder / "4244.json").symlink_to(target)
    clear_snapshots(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert target.read_text() == "keep"
