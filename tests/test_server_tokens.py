"""The bearer token is checked on every request: a revocation or an expiry holds from the very
next request (on the same keep-alive connection, and when another process writes it), a changed
policy decides who the token's owner is from the next request on, and the stored record the
check reads is the token's own."""

from __future__ import annotations

import http.client
import json

import yaml
from sqlalchemy import create_engine, update

from tests import test_server_support as support
from tests.test_server_support import bearer

app, client, tokens, live = support.app, support.client, support.tokens, support.live


def _get(conn: http.client.HTTPConnection, path: str, token: str) -> tuple[int, dict]:
    conn.request("GET", path, headers=bearer(token))
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_verify_reads_the_tokens_own_record(rt, tokens):
    s = rt.services
    for who, secret in tokens.items():
        info = s.tokens.verify(secret)
        assert info == s.tokens.get(info.id)
        assert info.owner == who and info.status() == "active"


def test_a_revoked_token_is_refused_on_the_very_next_request(rt, live, tokens):
    from policies.tokens import revoke_token

    s = rt.services
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        for _ in range(3):  # the token has been seen (and verified) several times
            status, body = _get(conn, "/whoami", tokens["carol"])
            assert status == 200 and body["name"] == "carol"
        carol_id = s.tokens.entries("carol")[0].id
        revoke_token(s.tokens, s.policy, s.audit, s.policy.human("alice"), carol_id)
        status, body = _get(conn, "/models", tokens["carol"])
        assert status == 401 and "revoked" in body["error"]["message"]
        status, body = _get(conn, "/whoami", tokens["carol"])
        assert status == 401
        # Another person's token on the same connection is unaffected.
        status, body = _get(conn, "/whoami", tokens["dana"])
        assert status == 200 and body["name"] == "dana"
    finally:
        conn.close()


def test_a_revocation_or_expiry_written_by_another_process_holds_at_once(rt, live, tokens):
    """`agent admin token revoke` runs in a process of its own: the server must not rely on
    hearing about it (its own engine, not the server's, writes the rows here)."""
    from policies.tokens import PersonalToken, hash_token

    s = rt.services
    other = create_engine(rt.settings.resolved_state_db_url)
    t = PersonalToken.__table__
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        assert _get(conn, "/models", tokens["bob"])[0] == 200
        assert _get(conn, "/models", tokens["dana"])[0] == 200
        with other.begin() as c:
            c.execute(
                update(t)
                .where(t.c.token_sha256 == hash_token(tokens["bob"]))
                .values(revoked_at="2026-01-01T00:00:00+00:00")
            )
            c.execute(
                update(t)
                .where(t.c.token_sha256 == hash_token(tokens["dana"]))
                .values(expires_at="2020-01-01T00:00:00+00:00")
            )
        status, body = _get(conn, "/models", tokens["bob"])
        assert status == 401 and "revoked" in body["error"]["message"]
        status, body = _get(conn, "/models", tokens["dana"])
        assert status == 401 and "expired" in body["error"]["message"]
        assert _get(conn, "/models", tokens["alice"])[0] == 200
    finally:
        conn.close()
        other.dispose()
    # The refused requests never reached the tool: bob's one read is his only audit row.
    bobs = s.audit.entries(action="list_models", actor="bob")
    assert [e["decision"] for e in bobs] == ["allowed"]


def test_a_changed_pinned_policy_decides_from_the_next_request(rt, client, tokens):
    """The person behind a token is looked up in the policy in force on every request: after
    `agent policy apply` in another process (the pin replaced on disk) a running server sees a
    new role at once, and a person the policy no longer lists is refused (403)."""
    from policies.pinned import apply_policy, load_pinned, parse_texts

    s = rt.services
    home = rt.settings.home_dir
    r = client.get("/whoami", headers=bearer(tokens["dana"]))
    assert r.status_code == 200 and r.json()["role"] == "Engineer"
    chat = {"model": "ml-engineer", "messages": [{"role": "user", "content": "Which models?"}]}
    first = client.post("/v1/chat/completions", json=chat, headers=bearer(tokens["dana"]))
    assert first.status_code == 200, first.text  # the agents now exist, made under this policy
    assert client.get("/whoami", headers=bearer(tokens["carol"])).status_code == 200
    before = r.json()["policy_digest"]

    pinned = load_pinned(home, audit=s.audit)
    data = yaml.safe_load(pinned.current.texts["roles.yaml"])
    data["people"]["dana"]["role"] = "QATester"
    del data["people"]["carol"]
    new = parse_texts({**pinned.current.texts, "roles.yaml": yaml.safe_dump(data)}, "test")
    alice = s.policy.human("alice", authenticated=True)
    # Applied as another process would (`agent policy apply` elsewhere): nothing tells this
    # server, which notices the replaced pin on the next request.
    apply_policy(home, new, actor=alice, audit=s.audit, expected_digest=pinned.digest)

    r = client.get("/whoami", headers=bearer(tokens["dana"]))
    assert r.status_code == 200
    assert r.json()["role"] == "QATester" and r.json()["policy_digest"] == new.digest != before
    # The agents made before see the new policy too: a QATester may not launch an Engineer.
    again = client.post("/v1/chat/completions", json=chat, headers=bearer(tokens["dana"]))
    assert again.status_code == 403 and "ml-engineer" in again.text, again.text
    r = client.get("/models", headers=bearer(tokens["carol"]))
    assert r.status_code == 403
    assert client.get("/models", headers=bearer(tokens["dana"])).status_code == 200
