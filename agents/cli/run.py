"""``agent run PROFILE --input JSON|TEXT [--dry-run]``: one request to a role agent (or
``supervisor``).

Exit status (docs/agents.md): 0 answered, stopped at a human approval, or a dry run's plan
shown; 2 bad input; 3 denied; 4 not found (offline plans report their first failed tool call
this way: an unknown model, a missing version, nothing deployed); 5 the offline planner did not
act (the request needs an LLM or one of the phrasings it lists); 1 LLM endpoint failure, max
steps, or another tool failure. A run the policy stopped at its bound on tool calls
(status ``tool_limit``) exits 3, like any other refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from agents.cli.common import as_option, console, json_option, runtime

if TYPE_CHECKING:
    from agents.supervisor import AgentSystem

llm_timeout_option = click.option(
    "--llm-timeout",
    type=click.FloatRange(min=0.01),
    default=60.0,
    show_default=True,
    help="Seconds to wait for each LLM reply.",
)
llm_retries_option = click.option(
    "--llm-retries",
    type=click.IntRange(0, 10),
    default=2,
    show_default=True,
    help="Retries on LLM timeouts, 429 and 5xx.",
)
max_steps_option = click.option(
    "--max-steps", type=click.IntRange(1, 100), default=8, show_default=True, help="Model steps."
)
thread_option = click.option("--thread", "thread_id", metavar="ID", help="Continue this thread.")


def agent_system(
    ctx: click.Context, *, llm_timeout: float, llm_retries: int, max_steps: int
) -> AgentSystem:
    from agents.llm import LLMConfig
    from agents.supervisor import AgentSystem

    rt = runtime(ctx)
    config = LLMConfig.from_env(
        settings=rt.settings, timeout_s=llm_timeout, max_retries=llm_retries
    )
    system = AgentSystem(rt, llm_config=config, max_steps=max_steps)
    ctx.call_on_close(system.close)
    return system


def user_of(ctx: click.Context, as_user: str | None):  # noqa: ANN201
    """The person the agent acts for, resolved like every command (token, identity mode);
    an Actor, so an authenticated identity stays authenticated in the agent's rights."""
    from agents.cli.common import human

    return human(ctx, as_user)


def event_printer(*, stream_text: bool) -> Callable[[dict[str, Any]], None]:
    """Show each tool call, result and hand-off as it happens (and streamed tokens)."""

    def show(event: dict[str, Any]) -> None:
        kind = event["type"]
        pad = "  " * (event.get("depth", 0) + 1)
        if kind == "text":
            if stream_text:
                click.echo(event["text"], nl=False)
        elif kind == "route":
            click.echo(f"supervisor -> {event['profile']}: {event['reason']}")
        elif kind == "plan":
            click.echo(f"{pad}{event['profile']}: " + event["text"].replace("\n", f"\n{pad}"))
        elif kind == "tool_call":
            click.echo(f"{pad}{event['profile']} -> {event['tool']} {event['arguments'][:160]}")
        elif kind == "tool_result":
            state = "ok" if event["ok"] else f"{event['code']}: {event['message']}"
            click.echo(f"{pad}  {state}")
        elif kind == "handoff":
            click.echo(f"{pad}hand-off {event['from']} => {event['to']}: {event['task'][:200]}")
        elif kind == "handoff_done":
            click.echo(f"{pad}hand-off to {event['to']} ended: {event['status']}")

    return show


def render_result(
    result: dict[str, Any], *, answer_shown: bool = False, footer: bool = True
) -> None:
    from agents.role_agent import citations

    c = console()
    head = f"{result['profile']} ({result['role']}) for {result['on_behalf_of']}"
    dry = " · dry run (nothing that writes was called)" if result.get("dry_run") else ""
    c.print(f"[bold]{result['status']}[/bold] · {head} · {result['model']}{dry}")
    if result["status"] == "llm_error":
        err = result["error"] or {}
        click.echo(f"Error: {err.get('message', '')}", err=True)
        if err.get("hint"):
            click.echo(f"Hint: {err['hint']}", err=True)
        _print_transcript(result["transcript"])
    elif result["status"] == "tool_limit":
        # The policy stopped the run: say which limit, even if the model's text was streamed.
        err = result["error"] or {}
        click.echo(f"Stopped by policy: {result['answer']}", err=True)
        if err.get("hint"):
            click.echo(f"Hint: {err['hint']}", err=True)
    elif not answer_shown:
        if result["status"] == "pending_approval":
            for line in results_before_stop(result):
                click.echo(line)
        click.echo(result["answer"])
    cited = citations(result)
    if cited:
        click.echo("Tool results used:")
        for line in cited:
            click.echo(f"  {line}")
    if footer:
        click.echo(f"Thread: {result['thread_id']} (continue with --thread {result['thread_id']})")


def results_before_stop(result: dict[str, Any]) -> list[str]:
    """What a run found before it stopped at an approval (the stop's answer is about the
    approval only): one line per successful call, existence checks and the request left out."""
    from agents.planner_summary import describe, load_result

    names = {
        tc["id"]: tc["function"]["name"]
        for m in result["transcript"]
        if m["role"] == "assistant"
        for tc in m.get("tool_calls") or []
    }
    lines = []
    for m in result["transcript"]:
        call_id = m.get("tool_call_id", "")
        name = names.get(call_id)
        if m["role"] != "tool" or name in (None, "request_promotion", "handoff"):
            continue
        if "_check_" in call_id:
            continue
        found = load_result(m["content"])
        if found.get("ok"):
            lines.append(describe(name, found))
    return lines


def _print_transcript(messages: list[dict[str, Any]]) -> None:
    click.echo("Transcript so far (kept in the thread):", err=True)
    for m in messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            names = ", ".join(tc["function"]["name"] for tc in m["tool_calls"])
            click.echo(f"  assistant: calls {names}", err=True)
        else:
            click.echo(f"  {m['role']}: {str(m.get('content') or '')[:300]}", err=True)


@click.command("run")
@click.argument("profile")
@click.option(
    "--input",
    "raw",
    required=True,
    metavar="JSON|TEXT",
    help='{"query": "..."}, {"tool": NAME, "args": {...}}, {"workflow": "promotion", '
    '"input": {...}} or plain text; @FILE reads it from a file, - from stdin.',
)
@as_option
@thread_option
@json_option
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan only: reads run, no call that writes is made (nor a hand-off).",
)
@max_steps_option
@llm_timeout_option
@llm_retries_option
@click.pass_context
def run(
    ctx: click.Context,
    profile: str,
    raw: str,
    as_user: str | None,
    thread_id: str | None,
    as_json: bool,
    dry_run: bool,
    max_steps: int,
    llm_timeout: float,
    llm_retries: int,
) -> None:
    """Run agent PROFILE (or `supervisor` to route) on one request, as --as USER."""
    from agents.cli.common import loads_strict, read_input
    from agents.planner import parse_request
    from agents.role_agent import exit_code

    text = read_input(raw)
    # JSON is parsed strictly here (NaN/Infinity named, exit 2); plain text goes as it is.
    request = parse_request(loads_strict(text) if text.lstrip().startswith("{") else text)
    system = agent_system(
        ctx, llm_timeout=llm_timeout, llm_retries=llm_retries, max_steps=max_steps
    )
    result = system.run(
        profile,
        request,
        user=user_of(ctx, as_user),
        thread_id=thread_id,
        on_event=None if as_json else event_printer(stream_text=False),
        dry_run=dry_run,
    )
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        render_result(result)
    ctx.exit(exit_code(result))
