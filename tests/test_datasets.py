"""Datasets: format validation with every bad line named, digests across formats, sanitizing,
seeded splits, and the `agent data` commands refusing bad input without writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.datasets import Dataset, DatasetSanitizer, TokenCounter, near_duplicates
from core.errors import InvalidInput, NotFound
from tests.helpers.cli import run_agent

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


def chat(*turns: tuple[str, object], **extra: object) -> dict:
    return {"messages": [{"role": r, "content": c} for r, c in turns], **extra}


def test_every_bad_line_is_reported_with_its_line_and_field(tmp_path: Path) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{bad"}}
    path = write_jsonl(
        tmp_path / "train.jsonl",
        [
            GOOD,
            chat(("user", "a"), ("user", 5)),  # 2: content type, last turn not assistant
            "{not json",  # 3
            chat(("assistant", "x")),  # 4: first turn
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                    {"role": "tool", "tool_call_id": "zz", "content": "1"},
                    {"role": "assistant", "content": "ok"},
                ]
            },  # 5
            '{"messages": [{"role": "user", "content": "x", "n": NaN}]}',  # 6: NaN
            "",
            chat(("user", "a"), ("robot", "b")),  # 8: unknown role
            chat(("user", "a"), ("assistant", "b"), ("system", "late"), ("assistant", "c")),  # 9
        ],
    )
    report = Dataset.from_jsonl(path).validate()
    assert not report.ok
    found = {(e.line, e.field) for e in report.errors}
    assert (2, "messages[1].content") in found
    assert (2, "messages[1].role") in found
    assert (3, "(line)") in found
    assert (4, "messages[0].role") in found
    assert (5, "messages[1].tool_calls[0].function.arguments") in found
    assert (5, "messages[2].tool_call_id") in found
    assert (6, "(line)") in found and any("NaN" in e.message for e in report.errors if e.line == 6)
    assert (8, "messages[1].role") in found
    assert (9, "messages[2].role") in found
    assert 1 not in {e.line for e in report.errors}
    assert report.invalid_rows == 7 and report.rows == 8
    assert report.length_unit in ("characters", "tokens") and report.length_method["note"]


def test_errors_are_capped_but_all_counted(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ["{oops"] * 30)
    report = Dataset.from_jsonl(path, max_errors=5).validate(max_errors=5)
    assert len(report.errors) == 5 and report.total_errors == 30 and report.errors_truncated
    with pytest.raises(InvalidInput, match="30 of 30 rows are invalid.*line 1"):
        Dataset.from_jsonl(path).require_valid()


def test_prompt_completion_format(tmp_path: Path) -> None:
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "", "completion": 3, "x": 1}]
    report = Dataset.from_records(rows).validate()
    assert {(e.line, e.field) for e in report.errors} == {
        (2, "prompt"),
        (2, "completion"),
        (2, "x"),
    }


def test_without_a_usable_tiktoken_lengths_are_characters_and_say_so() -> None:
    counter = TokenCounter.auto()
    if counter.unit == "characters":
        assert "tiktoken" in counter.note
        assert counter.count("hello") == 5


def test_digest_is_the_same_across_file_formats(tmp_path: Path) -> None:
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    ds = Dataset.from_records(rows, name="t")
    ds.to_csv(tmp_path / "t.csv")
    ds.to_parquet(tmp_path / "t.parquet")
    ds.to_jsonl(tmp_path / "t.jsonl")
    digests = {Dataset.load(tmp_path / f"t.{s}").digest for s in ("csv", "parquet", "jsonl")}
    assert digests == {ds.digest}
    changed = Dataset.from_records([{"a": 1, "b": "x"}, {"a": 3, "b": "y"}])
    assert changed.digest != ds.digest


def test_csv_infinity_is_reported(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\ninf,3\n")
    report = Dataset.load(tmp_path / "x.csv").validate()
    assert not report.ok and [(e.line, e.field) for e in report.errors] == [(2, "a")]


def test_sanitizer_summary_says_what_changed_and_why() -> None:
    base = "Please summarise the quarterly report on churn for the north region in detail"
    rows = [
        chat(("user", "mail me at jane.doe@example.com or +1 415 555 0134"), ("assistant", "ok")),
        chat(("user", base), ("assistant", "Sure, here it is.")),
        chat(("user", base), ("assistant", "Sure, here it is.")),  # exact duplicate
        chat(("user", base + "!"), ("assistant", "Sure, here it is.")),  # near duplicate
        chat(("user", "key sk-abcdefghijklmnopqrstuv1234 leaked"), ("assistant", "rotating")),
        chat(("user", "x"), ("assistant", "y")),  # too short
    ]
    for r in rows:
        r["id"] = "drop-me"
    ds = Dataset.from_records(rows, name="chat")
    clean, summary = DatasetSanitizer(min_length=5, strip_keys=("id",)).sanitize(ds)
    assert summary.dropped == {
        "too_short": 1,
        "too_long": 0,
        "exact_duplicate": 1,
        "near_duplicate": 1,
    }
    reasons = {d["line"]: d["reason"] for d in summary.dropped_lines}
    assert reasons == {3: "exact_duplicate", 4: "near_duplicate", 6: "too_short"}
    assert summary.redactions == {"email": 1, "phone": 1, "secret": 1}
    assert summary.stripped_keys == {"id": 6}
    text = json.dumps(clean.rows)
    assert "jane.doe" not in text and "555 0134" not in text and "sk-abcdef" not in text
    assert "[REDACTED_EMAIL]" in text and "drop-me" not in text
    assert summary.output_digest == clean.digest != summary.input_digest
    assert ds.rows[0]["messages"][0]["content"].startswith("mail me at jane")  # input untouched


def test_near_duplicates_use_the_exact_jaccard_threshold() -> None:
    a = "the quick brown fox jumps over the lazy dog " * 3
    pairs = near_duplicates([a, a + "!", "completely different text about models"], 0.9)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1)]
    assert near_duplicates([a, "completely different"], 0.5) == []


def test_splits_are_seeded_and_stratified() -> None:
    rows = [{"x": i, "y": i % 3 == 0} for i in range(300)]
    ds = Dataset.from_records(rows, name="tab")
    one, two = ds.split(seed=7), ds.split(seed=7)
    assert {k: v.digest for k, v in one.items()} == {k: v.digest for k, v in two.items()}
    assert [len(one[k]) for k in ("train", "validation", "test")] == [240, 30, 30]
    assert ds.split(seed=8)["test"].digest != one["test"].digest
    strat = ds.split((0.5, 0.5), seed=1, stratify="y")
    assert sum(r["y"] for r in strat["train"].rows) == 50
    with pytest.raises(InvalidInput):
        ds.split((0.5, 0.6))


def test_cli_validate_lists_bad_lines_and_exits_2(home: Path, capsys) -> None:
    write_jsonl(Path("train.jsonl"), [GOOD, "{broken", chat(("user", "q"))])
    code, out, _ = run_agent(capsys, "data", "validate", "train.jsonl", "--as", "dana")
    assert code == 2
    assert "line 2: (line): invalid JSON" in out and "line 3: messages[0].role" in out
    code, out, _ = run_agent(capsys, "data", "validate", "train.jsonl", "--json", "--as", "dana")
    assert code == 2 and json.loads(out)["report"]["invalid_rows"] == 2


def test_cli_sanitize_and_split_refuse_bad_input_and_write_nothing(home: Path, capsys) -> None:
    write_jsonl(Path("ok.jsonl"), [GOOD, GOOD])
    write_jsonl(Path("bad.jsonl"), [GOOD, "{broken"])
    before = sorted(p.name for p in Path.cwd().iterdir())
    cases = [
        ("data", "sanitize", "bad.jsonl", "--out", "clean.jsonl"),  # unreadable line
        ("data", "sanitize", "ok.jsonl", "--out", "../outside.jsonl"),  # hostile path
        ("data", "sanitize", "ok.jsonl", "--out", "ok.jsonl"),  # would overwrite the input
        ("data", "sanitize", "../../etc/passwd", "--out", "x.jsonl"),
        ("data", "sanitize", "ok.jsonl", "--out", "clean.exe"),
        ("data", "split", "bad.jsonl"),
        ("data", "split", "ok.jsonl", "--fractions", "0.5,0.7"),
    ]
    for args in cases:
        code, _, err = run_agent(capsys, *args, "--as", "dana")
        assert code in (2, 4), (args, err)
        assert "Traceback" not in err and err.startswith("Error:"), err
    assert sorted(p.name for p in Path.cwd().iterdir()) == before
    code, out, _ = run_agent(
        capsys, "data", "sanitize", "ok.jsonl", "--out", "clean.jsonl", "--json", "--as", "dana"
    )
    assert code == 0 and json.loads(out)["summary"]["dropped"]["exact_duplicate"] == 1
    code, _, err = run_agent(
        capsys, "data", "sanitize", "ok.jsonl", "--out", "clean.jsonl", "--as", "dana"
    )
    assert code == 2 and "already exists" in err
    code, out, _ = run_agent(
        capsys, "data", "split", "ok.jsonl", "--fractions", "0.5,0.5", "--json", "--as", "dana"
    )
    assert code == 0 and set(json.loads(out)["parts"]) == {"train", "test"}


def test_missing_file_is_not_found() -> None:
    with pytest.raises(NotFound):
        Dataset.load("nope.jsonl")
    with pytest.raises(InvalidInput, match="unsupported"):
        Dataset.load("x.txt")
