"""Entry point of ``agent``. Subcommand modules load lazily so ``agent --help`` stays fast
(no mlflow, sklearn, langgraph or openai import until a command needs it)."""

from __future__ import annotations

import importlib
import os
import sys

import click

# name -> (module, attribute, one-line help)
COMMANDS = {
    "quickstart": (
        "agents.cli.quickstart",
        "quickstart",
        "Train, register, validate and request promotion of a demo model.",
    ),
    "models": ("agents.cli.models", "models", "List and show registered models."),
    "approvals": (
        "agents.cli.approvals",
        "approvals",
        "Review and decide production promotion requests.",
    ),
    "audit": (
        "agents.cli.audit",
        "audit",
        "Verify the audit chain; list entries; a model version's trail.",
    ),
    "deploy": ("agents.cli.deploy", "deploy", "Deployment status, rollback and gateway control."),
    "predict": ("agents.cli.predict", "predict", "Ask a deployed model for a prediction."),
    "monitor": (
        "agents.cli.monitor",
        "monitor",
        "Drift, estimated/realized performance, SLOs and alerts: report | watch | alerts.",
    ),
    "tool": ("agents.cli.tool", "tool", "Call any typed tool with JSON input (scripts)."),
    "eval": ("agents.cli.eval", "eval_group", "Evaluate model versions; show stored reports."),
    "workflow": ("agents.cli.workflow", "workflow", "Run a named workflow with JSON input."),
    "data": ("agents.cli.data", "data", "Validate, sanitize and split dataset files."),
    "features": (
        "agents.cli.features",
        "features",
        "Feature store: push, get (point in time), search, views.",
    ),
    "experiments": ("agents.cli.experiments", "experiments", "Tracked runs: list, show, compare."),
    "finetune": (
        "agents.cli.finetune",
        "finetune",
        "Fine-tuning jobs at an OpenAI-compatible API: create, status, cancel, register.",
    ),
    "run": ("agents.cli.run", "run", "Run a role agent on one request (LLM or offline planner)."),
    "chat": ("agents.cli.chat", "chat", "Chat with a role agent; history kept per thread."),
    "agents": ("agents.cli.agents_cmd", "agents", "Agent profiles: role, trust level and tools."),
    "review": (
        "agents.cli.review",
        "review",
        "Review a diff, git range or GitHub PR (MLOps checks).",
    ),
    "policy": (
        "agents.cli.policy_cmd",
        "policy",
        "The policy in force and its digest: show, diff FILE, apply FILE (admins).",
    ),
    "admin": (
        "agents.cli.admin",
        "admin",
        "Personal tokens: admin token create PERSON | list | revoke ID (admins).",
    ),
    "whoami": (
        "agents.cli.admin",
        "whoami",
        "Who you are: person, role, token or claim, permissions, policy digest.",
    ),
    "serve": ("agents.cli.serve", "serve", "Serve the team control plane: API, chat, console."),
    "mcp": (
        "agents.cli.mcp_cmd",
        "mcp",
        "Serve an agent profile's tools to MCP clients (stdio or streamable HTTP).",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar="MODELOPS_HOME",
    help="State directory (default ./.modelops).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "--server",
    metavar="URL",
    envvar="MODELOPS_SERVER",
    help="Talk to a control plane (`agent serve`) with your token instead of the local home.",
)
@click.pass_context
def cli(ctx: click.Context, home: str | None, debug: bool, server: str | None) -> None:
    """ModelOps Agents: role agents that run a real ML model lifecycle under policies,
    with a human approval on every production promotion.

    Identity: with a personal token (MODELOPS_TOKEN, or ~/.config/modelops/token with mode
    0600; an admin creates one with `agent admin token create PERSON`) you act as its owner.
    Without one, --as NAME is a claim, refused when the policy says `identity: token`.
    `agent whoami` shows who you are."""
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    ctx.obj["debug"] = debug
    ctx.obj["server"] = server


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("MODELOPS_DEBUG") == "1"
    try:
        rc = cli.main(args=args, prog_name="agent", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except Exception as exc:
        from core.errors import ModelOpsError

        if debug:
            raise
        if isinstance(exc, ModelOpsError):
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            sys.exit(exc.exit_code)
        click.echo(f"Error: {type(exc).__name__}: {exc}", err=True)
        click.echo("Hint: run again with --debug for the traceback.", err=True)
        sys.exit(1)
    # With standalone_mode=False click returns ctx.exit()'s code instead of exiting.
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
