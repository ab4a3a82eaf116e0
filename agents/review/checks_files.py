"""Checks on any changed file: secrets (known token formats on added lines; secret-named
values in Python via ``ast``, in YAML/JSON via the YAML node tree, in env/ini/toml files by
their key = value structure) and unpinned requirements next to a model."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath
from typing import Any

from agents.review.diff import ChangedFile
from agents.review.findings import Finding
from agents.review.pyast import Module, name_tokens

# Formats a provider gives its keys: a match is a secret whatever the variable is called.
TOKEN_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("GitHub fine-grained token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{40,}\b")),
    ("OpenAI API key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{32,}\b")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{32,}\b")),
    ("Slack token", re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("Stripe live key", re.compile(r"\b[sr]k_live_[0-9A-Za-z]{24,}\b")),
    (
        "private key",
        re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    ),
)
_URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:([^\s@/'\"]+)@[^\s'\"]+", re.I)
_STRONG = {"password", "passwd", "pwd", "secret", "credential", "credentials", "passphrase"}
_KEYISH = {
    "token",
    "apikey",
    "api_key",
    "access_key",
    "secret_key",
    "private_key",
    "auth_key",
    "client_secret",
    "access_token",
    "refresh_token",
    "bearer",
}
_NOT_A_VALUE = {
    "path",
    "file",
    "filename",
    "url",
    "uri",
    "env",
    "var",
    "name",
    "id",
    "type",
    "header",
    "prefix",
    "length",
    "len",
    "count",
    "dir",
    "kind",
    "field",
    "format",
    "scope",
    "endpoint",
    "usage",
    "limit",
    "max",
    "min",
    "num",
    "size",
    "hash",
    "policy",
    "rotation",
    "expiry",
    "expires",
    "ttl",
    "hint",
    "source",
    "mode",
}
_PLACEHOLDER = re.compile(
    r"\$\{|\{\{|<[^>]*>|^\*+$|x{4,}|changeme|change_me|example|dummy|placeholder|redacted|"
    r"your[-_ ]|^\.\.\.|todo|fixme|^none$|^null$|^test$|^secret$|^password$",
    re.I,
)
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*?)\s*$")
_ENV_SUFFIXES = (".env", ".ini", ".cfg", ".toml", ".properties", ".conf")
_YAML_SUFFIXES = (".yaml", ".yml", ".json")


def secret_name(name: str) -> str | None:
    """'strong' for password-like names, 'key' for token/key names, None otherwise."""
    tokens = name_tokens(name)
    if not tokens or set(tokens) & _NOT_A_VALUE:
        return None
    joined = "_".join(tokens)
    if set(tokens) & _STRONG:
        return "strong"
    if any(k in joined for k in _KEYISH) or joined.endswith("_key") and len(tokens) > 1:
        return "key"
    return None


def looks_secret(value: str, kind: str) -> bool:
    v = value.strip()
    if not v or any(c.isspace() for c in v) or _PLACEHOLDER.search(v):
        return False
    if v.startswith(("$", "%", "os.environ", "env:", "vault:", "secret:")):
        return False
    if len(set(v)) < 4:
        return False
    if kind == "strong":
        return len(v) >= 6
    classes = sum(bool(re.search(p, v)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return len(v) >= 16 and classes >= 2


def _mask(value: str) -> str:
    return f"{value[:4]}… ({len(value)} chars)"


def _secret(cf: ChangedFile, line: int, what: str, key: str) -> Finding:
    return Finding("MO501", cf.path, line, f"{what} added in {cf.path}", key=key)


def check_secrets(cf: ChangedFile, modules: list[Module]) -> list[Finding]:
    out: list[Finding] = []
    added = cf.added
    for h in cf.hunks:
        for ln in h.lines:
            if ln.kind != "+" or ln.new_no is None:
                continue
            for label, pattern in TOKEN_FORMATS:
                m = pattern.search(ln.text)
                if m:
                    out.append(_secret(cf, ln.new_no, f"{label} ({_mask(m.group(0))})", label))
            for m in _URL_CREDENTIALS.finditer(ln.text):
                if looks_secret(m.group(1), "strong"):
                    out.append(_secret(cf, ln.new_no, "password in a URL", "url-credentials"))
    if cf.path.endswith(".py"):
        for module in modules:
            out += _python_secrets(cf, module, added)
    elif cf.new_text is not None and cf.path.endswith(_YAML_SUFFIXES):
        out += _yaml_secrets(cf, cf.new_text, added)
    elif _env_like(cf.path):
        out += _env_secrets(cf)
    # One finding per line: a token in a secret-named variable is one secret, not two.
    by_line: dict[int, Finding] = {}
    for f in out:
        by_line.setdefault(f.line, f)
    return [by_line[n] for n in sorted(by_line)]


def _env_secrets(cf: ChangedFile) -> list[Finding]:
    """KEY = VALUE files (.env, ini, toml, properties): their structure is one pair a line."""
    out = []
    for h in cf.hunks:
        for ln in h.lines:
            if ln.kind == "+" and ln.new_no and (m := _ENV_LINE.match(ln.text)):
                value = m.group(2).strip().strip("'\"")
                kind = secret_name(m.group(1))
                if kind and looks_secret(value, kind):
                    out.append(_secret(cf, ln.new_no, f"{m.group(1)} = {_mask(value)}", m.group(1)))
    return out


def _env_like(path: str) -> bool:
    name = PurePosixPath(path).name
    return name.startswith(".env") or name.endswith(_ENV_SUFFIXES)


def _python_secrets(cf: ChangedFile, m: Module, added: set[int]) -> list[Finding]:
    out = []
    pairs: list[tuple[str, ast.AST, ast.AST]] = []
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                target = (
                    t.id
                    if isinstance(t, ast.Name)
                    else t.attr
                    if isinstance(t, ast.Attribute)
                    else None
                )
                if target:
                    pairs.append((target, node.value, node))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            pairs.append((node.target.id, node.value, node))
        elif isinstance(node, ast.keyword) and node.arg:
            pairs.append((node.arg, node.value, node.value))
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and isinstance(k.value, str):
                    pairs.append((k.value, v, k))
    for name, value, _anchor in pairs:
        if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
            continue
        kind = secret_name(name)
        line = m.line(value)
        if kind and line in added and looks_secret(value.value, kind):
            out.append(_secret(cf, line, f"{name} = {_mask(value.value)}", name))
    return out


def _yaml_secrets(cf: ChangedFile, text: str, added: set[int]) -> list[Finding]:
    out = []
    for key, value, line in yaml_scalars(text):
        kind = secret_name(key)
        if kind and line in added and looks_secret(value, kind):
            out.append(_secret(cf, line, f"{key}: {_mask(value)}", key))
    return out


def yaml_scalars(text: str) -> list[tuple[str, str, int]]:
    """(key, scalar value, 1-based line) for every mapping entry with a scalar value."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    out: list[tuple[str, str, int]] = []
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and isinstance(v, yaml.ScalarNode):
                    out.append((str(k.value), str(v.value), v.start_mark.line + 1))
                else:
                    stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return out


# MO801 -----------------------------------------------------------------------------------------
_MODEL_FILES = ("MLmodel",)
_MODEL_SUFFIXES = (
    ".onnx",
    ".skops",
    ".pkl",
    ".joblib",
    ".pt",
    ".pth",
    ".h5",
    ".keras",
    ".safetensors",
    ".ubj",
    ".cbm",
    ".bst",
    ".gguf",
)
_MODEL_DIRS = {"model", "models", "serving", "serve", "inference", "deploy", "deployment"}


def unpinned(text: str) -> bool:
    """A pip requirement with no version (no specifier, no URL, no local path)."""
    from packaging.requirements import InvalidRequirement, Requirement

    line = text.split(" #", 1)[0].strip()
    if not line or line.startswith(("#", "-", ".", "/")) or "://" in line:
        return False
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return False
    return not req.specifier and not req.url


def is_requirements_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return (name.startswith("requirements") and name.endswith((".txt", ".in"))) or name in (
        "conda.yaml",
        "conda.yml",
        "environment.yml",
        "environment.yaml",
        "python_env.yaml",
    )


def next_to_model(path: str, listing: list[str] | None) -> bool:
    """Requirements that belong to a model: a model file beside them, or a model/serving
    folder in their path."""
    p = PurePosixPath(path)
    if {part.lower() for part in p.parent.parts} & _MODEL_DIRS:
        return True
    return any(n in _MODEL_FILES or n.endswith(_MODEL_SUFFIXES) for n in listing or [])


def check_requirements(cf: ChangedFile, listing: list[str] | None) -> list[Finding]:
    if cf.status == "removed" or not is_requirements_file(cf.path):
        return []
    if not next_to_model(cf.path, listing):
        return []
    added = cf.added
    out = []
    for req, line in _requirement_entries(cf):
        if line in added and unpinned(req):
            out.append(
                Finding(
                    "MO801",
                    cf.path,
                    line,
                    f"model requirement {req.strip()!r} has no version",
                    key=req.strip().lower(),
                )
            )
    return out


def _requirement_entries(cf: ChangedFile) -> list[tuple[str, int]]:
    name = PurePosixPath(cf.path).name
    if name.endswith((".txt", ".in")):
        return [
            (ln.text, ln.new_no) for h in cf.hunks for ln in h.lines if ln.kind == "+" and ln.new_no
        ]
    if cf.new_text is None:
        return []
    return [(req, line) for req, line in _conda_entries(cf.new_text)]


def _conda_entries(text: str) -> list[tuple[str, int]]:
    """pip requirements of a conda.yaml / python_env.yaml (conda pins ``pkg=1.2`` count)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return []
    out: list[tuple[str, int]] = []

    def items(node: Any, conda: bool) -> None:
        if not isinstance(node, yaml.SequenceNode):
            return
        for item in node.value:
            if isinstance(item, yaml.ScalarNode):
                value = str(item.value)
                if conda and "=" in value and not re.search(r"[<>!~]=|==", value):
                    value = value.replace("=", "==", 1)  # conda's pkg=1.2 is a pin
                out.append((value, item.start_mark.line + 1))
            elif isinstance(item, yaml.MappingNode):
                for k, v in item.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == "pip":
                        items(v, False)

    if isinstance(root, yaml.MappingNode):
        for k, v in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value in ("dependencies", "build_dependencies"):
                items(v, k.value == "dependencies")
    return out
