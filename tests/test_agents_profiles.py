"""The static profile view (agents/profiles.py) against the real policy and tool catalog, and
the start-up cost of `agent agents list`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from agents.profiles import list_profiles, resolve_home, static_catalog
from tools.base import load_catalog

ROOT = Path(__file__).resolve().parent.parent


def test_static_catalog_matches_the_imported_catalog() -> None:
    static = static_catalog()
    live = load_catalog()
    assert set(static) == set(live)
    for name, tool in live.items():
        s = static[name]
        assert (s.permission, s.side_effect, s.description, s.people_only) == (
            tool.permission,
            tool.side_effect,
            tool.description,
            tool.people_only,
        )


def test_profiles_list_what_the_dispatcher_offers(rt) -> None:
    policy = rt.services.policy
    listed = {p.name: p for p in list_profiles()}
    assert set(listed) == set(policy.profiles)
    for name, info in listed.items():
        # The listing shows the most a profile may do: what it holds for a person of its own
        # role. For anyone else it holds less (the intersection with that person's rights).
        person = next(p.name for p in policy.people.values() if p.role == info.role)
        actor = policy.agent(name, person)
        assert info.role == actor.role
        assert info.trust == policy.trust(actor)
        assert info.tools == sorted(t.name for t in rt.dispatcher.tools_for(actor))
        for other in policy.people:
            held = {t.name for t in rt.dispatcher.tools_for(policy.agent(name, other))}
            assert held <= set(info.tools)


def test_home_resolution_matches_the_settings(home) -> None:
    from core.settings import load_settings

    assert resolve_home() == load_settings().home_dir


def test_policies_dir_from_the_environment_does_not_swap_profiles(
    home, monkeypatch, tmp_path
) -> None:
    custom = tmp_path / "pol"
    custom.mkdir()
    data = yaml.safe_load((ROOT / "policies" / "roles.yaml").read_text())
    data["profiles"] = {"only-one": {"role": "Architect", "persona": "x"}}
    (custom / "roles.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("MODELOPS_POLICIES_DIR", str(custom))
    assert "only-one" not in [p.name for p in list_profiles()]


def test_profiles_come_from_the_pinned_policy(home) -> None:
    from core.settings import load_settings
    from policies.pinned import PolicySet, apply_policy, parse_texts
    from policies.rbac import Actor, ActorKind
    from tools.context import Services

    services = Services(load_settings())
    pinned = services.pinned
    data = yaml.safe_load(pinned.current.texts["roles.yaml"])
    data["profiles"]["reviewer"] = {"role": "Architect", "persona": "x"}
    new: PolicySet = parse_texts(
        {**pinned.current.texts, "roles.yaml": yaml.safe_dump(data)}, "test"
    )

    alice = Actor(name="alice", kind=ActorKind.HUMAN, role="Engineer")
    apply_policy(home, new, actor=alice, audit=services.audit, expected_digest=pinned.digest)
    assert "reviewer" in [p.name for p in list_profiles()]


def test_hand_off_targets_never_more_trusted() -> None:
    by_name = {p.name: p for p in list_profiles()}
    rank = {"OBSERVED": 1, "TRUSTED": 2}
    for p in by_name.values():
        assert p.name not in p.hands_off_to
        for target in p.hands_off_to:
            assert rank[by_name[target].trust] <= rank[p.trust]
    assert "ml-engineer" not in by_name["architect"].hands_off_to
    assert "qa-tester" in by_name["ml-engineer"].hands_off_to


def test_agents_list_starts_without_heavy_imports(tmp_path) -> None:
    code = (
        "import sys\n"
        "from agents.cli.main import main\n"
        "try:\n"
        "    main(['agents', 'list', '--json'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('mlflow', 'sklearn', 'langgraph', 'openai', 'sqlalchemy',\n"
        "         'pydantic_settings', 'pandas') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MODELOPS_HOME": str(tmp_path)},
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stderr
    profiles = json.loads(out.stdout)
    assert {p["profile"] for p in profiles} >= {"ml-engineer", "architect", "qa-tester"}
