"""The review bot's entry points, shared by ``agent review`` and the webhook: review a patch,
a local git range or a pull request; post the result as one review; upload SARIF.

Registry lookups run as the ``architect`` agent profile acting for a configured person (the
reviewer): read + design rights intersected with that person's, read-only tools only, every
call authorized and audited by the dispatcher. No person, no lookups (the output says so)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.review.checks_registry import REVIEW_PROFILE, RegistryLookup
from agents.review.diff import GitContents, git_range, parse_diff, review_patch
from agents.review.engine import ReviewResult, review
from agents.review.github import (
    DEFAULT_PER_FILE_CAP,
    GitHubClient,
    PullRef,
    overflow_section,
    plan_comments,
    read_pull,
    sync_review,
)
from agents.review.render import markdown
from agents.review.sarif import build_sarif, upload_payload


@dataclass
class Reviewer:
    """Who looks things up: the dispatcher and the person the agents act for (or None)."""

    dispatcher: Any = None
    policy: Any = None
    person: Any = None
    llm_client: Any = None
    skipped: str = ""

    def lookup(self) -> RegistryLookup | None:
        if self.dispatcher is None or self.person is None:
            return None
        return RegistryLookup(self.dispatcher, self.policy.agent(REVIEW_PROFILE, self.person))

    def llm_runner(self) -> Any:
        if self.llm_client is None:
            return None
        from agents.review.llm_review import LLMReviewer

        return LLMReviewer(
            self.llm_client, self.dispatcher, self.policy or _bundled_policy(), self.person
        )


def _bundled_policy() -> Any:
    from policies.pinned import BUNDLED_DIR
    from policies.rbac import Policy

    return Policy.from_yaml(BUNDLED_DIR / "roles.yaml")


def llm_client_from_env(settings: Any = None) -> Any:
    """The configured LLM client, or None offline."""
    from agents.llm import LLMClient, LLMConfig

    config = LLMConfig.from_env(settings=settings)
    return LLMClient(config) if config.is_configured() else None


def _run(
    files: list, contents: Any, source: dict[str, Any], reviewer: Reviewer, text: str
) -> ReviewResult:
    return review(
        files,
        contents,
        source=source,
        lookup=reviewer.lookup(),
        registry_skipped=reviewer.skipped or "no reviewer identity",
        llm_runner=reviewer.llm_runner(),
        diff_text=text,
    )


def review_patch_text(text: str, root: Path | None, reviewer: Reviewer, label: str) -> ReviewResult:
    files, contents = review_patch(text, root)
    partial = [
        f.path for f in files if f.new_text is None and f.status != "removed" and not f.binary
    ]
    source = {"kind": "diff", "input": label, "files_from_hunks_only": partial}
    result = _run(files, contents, source, reviewer, text)
    if partial:
        shown = ", ".join(partial[:10]) + (" …" if len(partial) > 10 else "")
        result.notes.append(
            f"reviewed from the patch's hunks only (not in the tree at --repo, or different "
            f"there): {shown}"
        )
    return result


def review_git(repo: Path, spec: str, reviewer: Reviewer) -> ReviewResult:
    text, base, head = git_range(repo, spec)
    contents = GitContents(repo, base, head)
    files = parse_diff(text, contents)
    return _run(
        files, contents, {"kind": "git", "range": spec, "base": base, "head": head}, reviewer, text
    )


@dataclass
class PullReview:
    pr: PullRef
    info: dict[str, Any]
    result: ReviewResult


def review_pull(client: GitHubClient, pr: PullRef, reviewer: Reviewer) -> PullReview:
    info, files, contents, text, notes = read_pull(client, pr)
    source = {
        "kind": "github",
        "pull": pr.slug,
        "head": info["head"]["sha"],
        "base": info["base"]["sha"],
    }
    result = _run(files, contents, source, reviewer, text)
    result.notes = notes + result.notes
    return PullReview(pr, info, result)


def post_review(
    client: GitHubClient, pull: PullReview, *, per_file_cap: int = DEFAULT_PER_FILE_CAP
) -> dict[str, Any]:
    result = pull.result
    inline, rest = plan_comments(result.files, result.findings + result.llm_findings, per_file_cap)
    body = markdown(result, extra=overflow_section(rest))
    return sync_review(client, pull.pr, pull.info["head"]["sha"], body, inline)


def upload_sarif(
    client: GitHubClient, pull: PullReview, *, ref: str | None = None, commit_sha: str | None = None
) -> dict[str, Any]:
    """Upload to code scanning. For ``refs/pull/N/merge`` (the default: results show as a
    PR check) the commit is the PR's merge commit."""
    from core.errors import InvalidInput

    ref = ref or pull.pr.merge_ref
    if commit_sha is None:
        commit_sha = (
            pull.info.get("merge_commit_sha")
            if ref.endswith("/merge")
            else pull.info["head"]["sha"]
        )
    if not commit_sha:
        raise InvalidInput(
            f"GitHub has no merge commit for {pull.pr.slug} yet",
            hint="Pass --commit-sha (in Actions: $GITHUB_SHA), or --ref refs/heads/BRANCH.",
        )
    payload = upload_payload(build_sarif(pull.result.findings, notes=pull.result.notes))
    receipt = client.upload_sarif(pull.pr, payload, commit_sha, ref)
    return {"ref": ref, "commit_sha": commit_sha, **receipt}
