"""``agent chat PROFILE``: a conversation with a role agent; tokens stream as they arrive and
the history is kept in the thread (``--thread`` to come back to it). ``/exit`` leaves."""

from __future__ import annotations

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
@click.argument("profile")
@as_option
@thread_option
@max_steps_option
@llm_timeout_option
@llm_retries_option
@click.pass_context
def chat(
    ctx: click.Context,
    profile: str,
    as_user: str | None,
    thread_id: str | None,
    max_steps: int,
    llm_timeout: float,
    llm_retries: int,
) -> None:
    """Chat with agent PROFILE as --as USER; /exit (or end of input) leaves."""
    import uuid

    from core.errors import InvalidInput

    system = agent_system(
        ctx, llm_timeout=llm_timeout, llm_retries=llm_retries, max_steps=max_steps
    )
    user = user_of(ctx, as_user)
    thread_id = thread_id or f"agt-{uuid.uuid4().hex[:12]}"
    model = system.llm_config()
    where = model.endpoint if model.is_configured() else "offline planner (no LLM configured)"
    click.echo(f"{profile} for {user.name} · thread {thread_id} · {where}. /exit to leave.")
    show = event_printer(stream_text=True)
    # Text streamed after the last tool result is the final answer, already on screen.
    final_text: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "text":
            final_text.append(event["text"])
        elif event["type"] == "tool_result":
            final_text.clear()
        show(event)

    while True:
        click.echo("you> ", nl=False)
        line = sys.stdin.readline()
        if not line or line.strip() in EXIT_WORDS:
            click.echo("")
            return
        if not line.strip():
            continue
        final_text.clear()
        try:
            result = system.run(
                profile, line, user=user, thread_id=thread_id, on_event=on_event, stream=True
            )
        except InvalidInput as exc:
            # One bad line should not end the conversation; a denial or a bug still does.
            click.echo(f"Error: {exc.message}" + (f"\nHint: {exc.hint}" if exc.hint else ""))
            continue
        click.echo("")
        shown = result["status"] == "done" and bool(final_text)
        render_result(result, answer_shown=shown, footer=False)
