"""``agent review``: review a diff, a local git range or a GitHub pull request."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from agents.cli.common import as_option, json_option
from core.errors import InvalidInput

FAIL_ON = ("error", "warning", "never")


@click.command()
@click.option("--diff", "diff_file", metavar="FILE|-", help="A unified diff file, or - for stdin.")
@click.option(
    "--git", "git_range", metavar="BASE..HEAD", help="A commit range of a local repository."
)
@click.option("--github", "github_pr", metavar="OWNER/REPO#N", help="A GitHub pull request.")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, exists=True),
    default=".",
    show_default=True,
    help="The repository (--git) or the checked-out tree a --diff was made against.",
)
@click.option("--post", is_flag=True, help="Post (or update) the review on the pull request.")
@click.option(
    "--sarif", "sarif_file", type=click.Path(dir_okay=False), help="Write SARIF 2.1.0 here."
)
@click.option("--upload-sarif", is_flag=True, help="Upload the SARIF to GitHub code scanning.")
@click.option("--ref", help="Code-scanning ref for --upload-sarif [default: refs/pull/N/merge].")
@click.option("--commit-sha", help="Commit for --upload-sarif [default: the PR's merge commit].")
@click.option(
    "--github-api-url", envvar="GITHUB_API_URL", help="GitHub Enterprise: https://HOST/api/v3."
)
@click.option(
    "--per-file-cap",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="Inline comments per file; the rest go in the review summary.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="never",
    show_default=True,
    help="Exit 1 when a deterministic finding is at least this severe.",
)
@click.option("--no-registry", is_flag=True, help="Skip the registry lookups.")
@click.option("--no-llm", is_flag=True, help="Skip the LLM reviews even when an LLM is configured.")
@as_option
@json_option
@click.pass_context
def review(
    ctx: click.Context,
    diff_file: str | None,
    git_range: str | None,
    github_pr: str | None,
    repo: str,
    post: bool,
    sarif_file: str | None,
    upload_sarif: bool,
    ref: str | None,
    commit_sha: str | None,
    github_api_url: str | None,
    per_file_cap: int,
    fail_on: str,
    no_registry: bool,
    no_llm: bool,
    as_user: str | None,
    as_json: bool,
) -> None:
    """Review a change like an MLOps engineer who knows this registry and policy.

    Deterministic checks (stable rule ids MO101…MO904, see docs/review.md) always run;
    references to registered models are looked up read-only as the architect agent for you
    (--as NAME); with an LLM configured the Architect and the QATester add LLM-written reviews.
    In GitHub Actions with no source given, the pull request comes from GITHUB_EVENT_PATH."""
    from agents.review import github as gh
    from agents.review import service

    sources = [s for s in (diff_file, git_range, github_pr) if s]
    if len(sources) > 1:
        raise InvalidInput("give one of --diff, --git or --github", hint="e.g. --git main..HEAD")
    pr = gh.parse_target(github_pr) if github_pr else None
    if not sources:
        pr = gh.from_actions_event()
        if pr is None:
            raise InvalidInput(
                "nothing to review: give --diff FILE|-, --git BASE..HEAD or --github OWNER/REPO#N",
                hint="e.g. `agent review --git main..HEAD` inside your repository.",
            )
    if (post or upload_sarif) and pr is None:
        raise InvalidInput("--post and --upload-sarif need a pull request (--github OWNER/REPO#N)")
    if sarif_file:
        _check_output(Path(sarif_file))
    reviewer = _reviewer(ctx, as_user, no_registry, no_llm)
    extra: dict[str, Any] = {}
    if pr is not None:
        client = gh.GitHubClient(base_url=github_api_url)
        pull = service.review_pull(client, pr, reviewer)
        result = pull.result
        if post:
            extra["posted"] = service.post_review(client, pull, per_file_cap=per_file_cap)
        if upload_sarif:
            sha = commit_sha or (
                os.environ.get("GITHUB_SHA") if not github_pr and not ref else None
            )
            extra["sarif_upload"] = service.upload_sarif(client, pull, ref=ref, commit_sha=sha)
    elif git_range:
        result = service.review_git(Path(repo), git_range, reviewer)
    else:
        text = _read_diff(diff_file or "-")
        result = service.review_patch_text(text, Path(repo), reviewer, diff_file or "-")
    if sarif_file:
        from agents.review.sarif import build_sarif, dumps

        _write_atomic(Path(sarif_file), dumps(build_sarif(result.findings, notes=result.notes)))
        extra["sarif_file"] = sarif_file
    if as_json:
        click.echo(json.dumps({**result.to_dict(), **extra}, indent=2, default=str))
    else:
        from agents.review.render import markdown

        click.echo(markdown(result), nl=False)
        for key, value in extra.items():
            click.echo(f"{key}: {json.dumps(value, default=str)}", err=True)
    if result.fails(fail_on):
        click.echo(f"Failing: findings at or above {fail_on!r} (--fail-on {fail_on}).", err=True)
        ctx.exit(1)


def _read_diff(name: str) -> str:
    from agents.review.diff import MAX_DIFF_BYTES

    try:
        if name == "-":
            data = sys.stdin.buffer.read(MAX_DIFF_BYTES + 1)
        else:
            with open(name, "rb") as fh:
                data = fh.read(MAX_DIFF_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read --diff {name}: {exc.strerror or exc}") from exc
    if len(data) > MAX_DIFF_BYTES:
        raise InvalidInput(f"--diff {name} is larger than {MAX_DIFF_BYTES // 1_000_000} MB")
    return data.decode(errors="replace")


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise InvalidInput(
            f"--sarif {path} is a directory", hint="Give a file name, e.g. review.sarif"
        )
    if not path.resolve().parent.is_dir():
        raise InvalidInput(f"--sarif {path}: the folder {path.parent} does not exist")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _reviewer(ctx: click.Context, as_user: str | None, no_registry: bool, no_llm: bool):  # noqa: ANN202
    """Registry lookups need an existing home and a person (token or --as); no home is
    created for a review."""
    from agents.cli.common import human, runtime
    from agents.cli.identity import read_cli_token
    from agents.review.service import Reviewer, llm_client_from_env
    from core.settings import load_settings

    settings = load_settings(home=ctx.find_root().obj.get("home"))
    rv = Reviewer()
    if not no_llm:
        rv.llm_client = llm_client_from_env(settings)
    if no_registry:
        rv.skipped = "--no-registry"
    elif ctx.find_root().obj.get("server"):
        # The lookups need this machine's dispatcher; a control plane serves them through
        # its webhook (agents.review.webhook) instead.
        rv.skipped = "not with --server: review on the control plane's host, or use its webhook"
    elif not settings.home_dir.is_dir():
        rv.skipped = (
            f"no ModelOps home at {settings.home_dir}; point MODELOPS_HOME (or --home) at one "
            "and pass --as NAME for registry lookups"
        )
    elif not (as_user or settings.user or read_cli_token()[0]):
        rv.skipped = (
            "no reviewer identity: pass --as NAME (or set MODELOPS_USER) for registry lookups"
        )
    else:
        rt = runtime(ctx)
        rv.dispatcher, rv.policy = rt.dispatcher, rt.services.policy
        rv.person = human(ctx, as_user)
    return rv
