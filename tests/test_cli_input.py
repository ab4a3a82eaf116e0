"""CLI input: ``--input @FILE`` / ``--input -`` on every command that has ``--input``, strict
JSON (NaN, Infinity and a null where a number belongs are usage errors naming the field), and
``agent predict`` with named rows, batches and ``--environment``."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from tests.helpers.cli import run_agent

# Every command with an --input option (grep agents/cli for "--input"), with its fixed words.
INPUT_COMMANDS = [
    ("predict", "m"),
    ("eval", "run"),
    ("tool", "call", "list_approvals"),
    ("workflow", "run", "ml-model-evaluation"),
    ("run", "ml-engineer"),
]


def test_every_input_option_is_covered():
    """The list above is every command with --input (a new one must join it)."""
    root = Path(__file__).resolve().parents[1] / "agents" / "cli"
    option = re.compile(r'option\(\s*"--input"')
    with_input = sorted(
        p.stem for p in root.glob("*.py") if option.search(p.read_text(encoding="utf-8"))
    )
    assert with_input == ["eval", "predict", "run", "tool", "workflow"]


@pytest.mark.parametrize("words", INPUT_COMMANDS, ids=[" ".join(w) for w in INPUT_COMMANDS])
def test_a_missing_input_file_is_a_usage_error_naming_it(home, capsys, words):
    code, out, err = run_agent(capsys, *words, "--input", "@no-such-rows.json", "--as", "alice")
    assert code == 2, err
    assert "no-such-rows.json" in err and "no such file" in err


def test_input_from_a_file_and_from_stdin(home, capsys, monkeypatch, tmp_path):
    (tmp_path / "args.json").write_text('{"status": "pending"}')
    code, out, err = run_agent(
        capsys, "tool", "call", "list_approvals", "--input", "@args.json", "--as", "alice"
    )
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "tool": "list_approvals", "output": {"approvals": []}}

    monkeypatch.setattr("sys.stdin", io.StringIO('{"status": "no-such-status"}'))
    code, out, err = run_agent(
        capsys, "tool", "call", "list_approvals", "--input", "-", "--as", "alice"
    )
    # The stdin text reached the tool: its schema refused the status it carried.
    assert code == 2 and "status" in out, out


def test_run_reads_its_request_from_a_file(home, capsys, tmp_path):
    (tmp_path / "req.json").write_text('{"tool": "list_approvals", "args": {"status": NaN}}')
    code, _, err = run_agent(capsys, "run", "ml-engineer", "--input", "@req.json", "--as", "dana")
    assert code == 2 and "args.status: NaN is not a JSON number" in err, err


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"status": NaN}', "status: NaN"),
        ('{"a": {"b": [1, Infinity]}}', "a.b[1]: Infinity"),
        ('{"x": -Infinity}', "x: -Infinity"),
    ],
)
def test_nan_and_infinity_are_usage_errors_naming_the_field(home, capsys, raw, field):
    code, out, err = run_agent(
        capsys, "tool", "call", "list_approvals", "--input", raw, "--as", "alice"
    )
    assert code == 2 and out == ""
    assert f"--input: {field} is not a JSON number" in err, err
    assert "Out of range float" not in err and "Traceback" not in err


def test_predict_refuses_nan_and_null_before_any_call(home, capsys):
    code, _, err = run_agent(
        capsys, "predict", "m", "--input", '{"features": [1.0, NaN]}', "--as", "alice"
    )
    assert code == 2 and "features[1]: NaN is not a JSON number" in err, err
    code, _, err = run_agent(
        capsys, "predict", "m", "--input", '{"features": [[1, 2], [3, null]]}', "--as", "alice"
    )
    assert code == 2 and "features[1][1] is null where a number is expected" in err, err


def test_a_null_number_in_a_tool_call_names_the_field_not_a_union_dump(home, capsys):
    code, out, _ = run_agent(
        capsys,
        "tool",
        "call",
        "predict",
        "--input",
        '{"name": "m", "features": [1.0, null, 3.0]}',
        "--as",
        "alice",
    )
    message = json.loads(out)["error"]["message"]
    assert code == 2
    assert message == "invalid arguments: features[1] is null where a number is expected"


def test_predict_takes_one_request_form(home, capsys):
    code, _, err = run_agent(capsys, "predict", "m", "--input", '{"rows": [1]}', "--as", "alice")
    assert code == 2 and "exactly one of features, inputs" in err, err
    code, _, err = run_agent(
        capsys,
        "predict",
        "m",
        "--input",
        '{"features": [1], "inputs": {"a": 1}}',
        "--as",
        "alice",
    )
    assert code == 2 and "got: features, inputs" in err, err


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [{"a": 1, "b": "x"}]},
        {"inputs": {"a": 1, "b": 2}},
        {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]},
        {"dataframe_split": {"columns": ["a"], "data": [[1]]}},
        {"dataframe_records": [{"a": 1}]},
        {"features": [[1.0, 2.0]]},
    ],
)
def test_predict_passes_named_forms_to_the_gateway_unchanged(body):
    from tools.deployment_tools import PredictInput

    args = PredictInput.model_validate({"name": "m", "environment": "staging", **body})
    assert args.body() == body and args.environment == "staging"


def test_predict_tool_refuses_data_without_columns_and_two_forms():
    from pydantic import ValidationError

    from tools.deployment_tools import PredictInput

    with pytest.raises(ValidationError, match='"data" needs "columns"'):
        PredictInput.model_validate({"name": "m", "data": [[1]]})
    with pytest.raises(ValidationError, match="got features, inputs"):
        PredictInput.model_validate({"name": "m", "features": [1.0], "inputs": {"a": 1}})


@pytest.mark.slow
def test_predict_named_rows_batch_from_a_file_on_staging(registered, bc_data, capsys, tmp_path):
    rt, name = registered["rt"], registered["name"]
    dana = rt.services.policy.human("dana")
    rt.dispatcher.call_or_raise(
        dana, "deploy_to_staging", {"name": name, "version": registered["versions"][0]}
    )
    columns = list(bc_data.feature_names)  # the signature's column names
    record = dict(zip(columns, registered["row"], strict=True))
    (tmp_path / "rows.json").write_text(json.dumps({"inputs": [record, record]}))
    code, out, err = run_agent(
        capsys,
        "predict",
        name,
        "--environment",
        "staging",
        "--input",
        "@rows.json",
        "--as",
        "alice",
        "--json",
    )
    assert code == 0, err
    body = json.loads(out)
    assert len(body["prediction"]) == 2 and body["prediction"][0] == body["prediction"][1]
    # Production has no gateway: --environment chose staging's.
    code, _, err = run_agent(
        capsys, "predict", name, "--input", json.dumps({"inputs": record}), "--as", "alice"
    )
    assert code == 4 and "on production" in err, err
