"""``agent chat [PROFILE]``: a conversation with a role agent; tokens stream as they arrive and
the history is kept in the thread (``--thread`` to come back to it). ``/exit`` leaves.

Without PROFILE the supervisor routes every line to the profile it fits (among those the
person may launch); each routed profile keeps its own thread, ``THREAD.PROFILE``, so a later
line for the same profile continues its conversation.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from agents.cli.common import as_option
from agents.cli.run import (
    agent_system,
    event_printer,
    llm_retries_option,
    llm_timeout_option,
    max_steps_option,
    render_result,
    thread_option,
    user_of,
)

EXIT_WORDS = ("/exit", "/quit")


@click.command("chat")
@click.argument("profile", required=False)
@as_option
@thread_option
@max_steps_option
@llm_timeout_option
@llm_retries_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="For scripts: no banner or prompt; one JSON result per input line (JSON Lines).",
)
@click.pass_context
def chat(
    ctx: click.Context,
    profile: str | None,
    as_user: str | None,
    thread_id: str | None,
    max_steps: int,
    llm_timeout: float,
    llm_retries: int,
    as_json: bool,
) -> None:
    """Chat with agent PROFILE (default: the supervisor routes each line) as --as USER;
    /exit (or end of input) leaves."""
    import uuid

    from agents.planner import parse_request
    from agents.supervisor import SUPERVISOR
    from core.errors import InvalidInput

    system = agent_system(
        ctx, llm_timeout=llm_timeout, llm_retries=llm_retries, max_steps=max_steps
    )
    user = user_of(ctx, as_user)
    profile = profile or SUPERVISOR
    routed = profile == SUPERVISOR and SUPERVISOR not in system.policy.profiles
    thread_id = thread_id or f"agt-{uuid.uuid4().hex[:12]}"
    model = system.llm_config()
    where = model.endpoint if model.is_configured() else "offline planner (no LLM configured)"
    how = " (routes each line; one thread per profile)" if routed else ""
    if not as_json:
        click.echo(
            f"{profile} for {user.name} · thread {thread_id}{how} · {where}. /exit to leave."
        )
    show = event_printer(stream_text=True)
    # Text streamed after the last tool result is the final answer, already on screen.
    final_text: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "text":
            final_text.append(event["text"])
        elif event["type"] == "tool_result":
            final_text.clear()
        if not as_json:
            show(event)

    while True:
        if not as_json:
            click.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line or line.strip() in EXIT_WORDS:
            if not as_json:
                click.echo("")
            return
        if not line.strip():
            continue
        final_text.clear()
        # A long conversation: a policy applied meanwhile (agent policy apply) holds from here.
        system.services.refresh_policy()
        try:
            if routed:
                request = parse_request(line)
                decision = system.route(request, user)
                result = system.run(
                    SUPERVISOR,
                    request,
                    user=user,
                    thread_id=f"{thread_id}.{decision.profile}",
                    on_event=on_event,
                    stream=True,
                    route=decision,
                )
            else:
                result = system.run(
                    profile, line, user=user, thread_id=thread_id, on_event=on_event, stream=True
                )
        except InvalidInput as exc:
            # One bad line should not end the conversation; a denial or a bug still does.
            if as_json:
                error = {"code": exc.code, "message": exc.message, "hint": exc.hint}
                click.echo(json.dumps({"status": "invalid_input", "error": error}))
            else:
                click.echo(f"Error: {exc.message}" + (f"\nHint: {exc.hint}" if exc.hint else ""))
            continue
        if as_json:
            click.echo(json.dumps({**result, "thread_id": thread_id}, default=str))
            continue
        click.echo("")
        shown = result["status"] in ("done", "unsupported") and bool(final_text)
        render_result(result, answer_shown=shown, footer=False)
