"""Validation of the two fine-tuning formats, one row at a time.

- chat: ``{"messages": [...], "tools"?: [...], "parallel_tool_calls"?: bool}``. Roles are
  system/developer (only before the conversation), user, assistant and tool; the first turn
  after the system messages is the user's; a tool message answers a tool call of the
  assistant turn before it; the last message is the assistant's (what is learned).
- prompt/completion: ``{"prompt": str, "completion": str}``, both non-empty.

Each problem is a ``LineError`` naming the row's line and the field path.
"""

from __future__ import annotations

import json
from typing import Any

from core.datasets.io import LineError

CHAT = "chat"
PROMPT_COMPLETION = "prompt_completion"
FORMATS = (CHAT, PROMPT_COMPLETION)
ROLES = ("system", "developer", "user", "assistant", "tool")
_SYSTEM_ROLES = ("system", "developer")
_MESSAGE_KEYS = {
    "role",
    "content",
    "name",
    "tool_calls",
    "tool_call_id",
    "weight",
    "refusal",
    "function_call",
}
_CHAT_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
_PART_TYPES = {"text": "text", "image_url": "image_url", "input_audio": "input_audio"}


def detect_format(value: Any) -> str | None:
    """``chat``, ``prompt_completion`` or None (a tabular row), from one row's keys."""
    if isinstance(value, dict):
        if "messages" in value:
            return CHAT
        if "prompt" in value or "completion" in value:
            return PROMPT_COMPLETION
    return None


def validate_row(line: int, value: Any, fmt: str) -> list[LineError]:
    if fmt == CHAT:
        return _Chat(line).check(value)
    return _prompt_completion(line, value)


def text_of(value: Any) -> str:
    """The text a row trains on (contents, prompt + completion, tool-call arguments)."""
    if not isinstance(value, dict):
        return ""
    if "messages" in value and isinstance(value["messages"], list):
        parts: list[str] = []
        for msg in value["messages"]:
            if not isinstance(msg, dict):
                continue
            parts.append(_content_text(msg.get("content")))
            for call in msg.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    parts.append(f"{fn.get('name', '')}{fn.get('arguments', '')}")
        return "\n".join(p for p in parts if p)
    return "\n".join(str(value.get(k, "")) for k in ("prompt", "completion") if value.get(k))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _prompt_completion(line: int, value: Any) -> list[LineError]:
    if not isinstance(value, dict):
        return [LineError(line=line, field="(line)", message="expected a JSON object")]
    errors = []
    for key in ("prompt", "completion"):
        v = value.get(key)
        if key not in value:
            errors.append(LineError(line=line, field=key, message="missing"))
        elif not isinstance(v, str):
            errors.append(
                LineError(line=line, field=key, message=f"must be a string, not {_kind(v)}")
            )
        elif not v.strip():
            errors.append(LineError(line=line, field=key, message="is empty"))
    for key in sorted(set(value) - {"prompt", "completion"}):
        errors.append(LineError(line=line, field=key, message="unexpected key"))
    return errors


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string"}.get(
        type(v), "an array" if isinstance(v, list) else "an object"
    )


class _Chat:
    def __init__(self, line: int) -> None:
        self.line = line
        self.errors: list[LineError] = []

    def err(self, field: str, message: str) -> None:
        self.errors.append(LineError(line=self.line, field=field, message=message))

    def check(self, value: Any) -> list[LineError]:
        if not isinstance(value, dict):
            self.err("(line)", "expected a JSON object")
            return self.errors
        for key in sorted(set(value) - _CHAT_KEYS):
            self.err(key, "unexpected key")
        if "tools" in value and not isinstance(value["tools"], list):
            self.err("tools", f"must be an array, not {_kind(value['tools'])}")
        messages = value.get("messages")
        if not isinstance(messages, list):
            self.err("messages", "missing" if messages is None else "must be an array")
            return self.errors
        if not messages:
            self.err("messages", "is empty")
            return self.errors
        self._messages(messages)
        return self.errors

    def _messages(self, messages: list[Any]) -> None:
        pending_calls: set[str] = set()  # tool-call ids of the last assistant turn
        seen_conversation = False
        first_turn_checked = False
        for i, msg in enumerate(messages):
            where = f"messages[{i}]"
            if not isinstance(msg, dict):
                self.err(where, f"must be an object, not {_kind(msg)}")
                continue
            for key in sorted(set(msg) - _MESSAGE_KEYS):
                self.err(f"{where}.{key}", "unexpected key")
            role = msg.get("role")
            if role not in ROLES:
                shown = "missing" if role is None else f"{role!r} is not one of {', '.join(ROLES)}"
                self.err(f"{where}.role", shown)
                continue
            if role in _SYSTEM_ROLES:
                if seen_conversation:
                    self.err(f"{where}.role", f"{role} message after the conversation started")
            else:
                seen_conversation = True
                if not first_turn_checked:
                    first_turn_checked = True
                    if role != "user":
                        self.err(f"{where}.role", f"the first turn must be user, not {role}")
            self._content(where, role, msg)
            if role == "assistant":
                pending_calls = self._tool_calls(where, msg)
                if "weight" in msg and msg["weight"] not in (0, 1):
                    self.err(f"{where}.weight", "must be 0 or 1")
            elif role == "tool":
                call_id = msg.get("tool_call_id")
                if not isinstance(call_id, str) or not call_id:
                    self.err(f"{where}.tool_call_id", "missing (a tool message answers a call)")
                elif call_id not in pending_calls:
                    self.err(
                        f"{where}.tool_call_id",
                        f"{call_id!r} answers no tool call of the assistant turn before it",
                    )
            else:
                pending_calls = set()
            if role != "assistant" and "tool_calls" in msg:
                self.err(f"{where}.tool_calls", f"only assistant messages call tools, not {role}")
            if role != "assistant" and "weight" in msg:
                self.err(f"{where}.weight", "only assistant messages carry a weight")
        last = messages[-1]
        if isinstance(last, dict) and last.get("role") in ROLES and last.get("role") != "assistant":
            self.err(
                f"messages[{len(messages) - 1}].role",
                f"the last message must be the assistant's (what the model learns), "
                f"not {last.get('role')}",
            )
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            self.err("messages", "no assistant message: nothing to learn")

    def _content(self, where: str, role: str, msg: dict[str, Any]) -> None:
        content = msg.get("content")
        field = f"{where}.content"
        if content is None:
            if role == "assistant" and (msg.get("tool_calls") or msg.get("function_call")):
                return
            self.err(field, "missing" if "content" not in msg else "is null")
            return
        if isinstance(content, str):
            if not content.strip() and not (role == "assistant" and msg.get("tool_calls")):
                self.err(field, "is empty")
            return
        if isinstance(content, list):
            if not content:
                self.err(field, "is an empty array")
            for j, part in enumerate(content):
                pf = f"{field}[{j}]"
                if not isinstance(part, dict) or part.get("type") not in _PART_TYPES:
                    self.err(pf, f"a content part needs a type in {', '.join(_PART_TYPES)}")
                    continue
                key = _PART_TYPES[part["type"]]
                if key not in part:
                    self.err(f"{pf}.{key}", "missing")
                elif part["type"] == "text" and not isinstance(part["text"], str):
                    self.err(f"{pf}.text", f"must be a string, not {_kind(part['text'])}")
                elif part["type"] != "text" and role != "user":
                    self.err(pf, f"{part['type']} parts are allowed in user messages only")
            return
        self.err(field, f"must be a string or an array of parts, not {_kind(content)}")

    def _tool_calls(self, where: str, msg: dict[str, Any]) -> set[str]:
        calls = msg.get("tool_calls")
        if calls is None:
            return set()
        field = f"{where}.tool_calls"
        if not isinstance(calls, list) or not calls:
            self.err(field, "must be a non-empty array")
            return set()
        ids: set[str] = set()
        for k, call in enumerate(calls):
            cf = f"{field}[{k}]"
            if not isinstance(call, dict):
                self.err(cf, f"must be an object, not {_kind(call)}")
                continue
            cid = call.get("id")
            if not isinstance(cid, str) or not cid:
                self.err(f"{cf}.id", "missing")
            elif cid in ids:
                self.err(f"{cf}.id", f"duplicate tool call id {cid!r}")
            else:
                ids.add(cid)
            if call.get("type", "function") != "function":
                self.err(f"{cf}.type", "must be 'function'")
            fn = call.get("function")
            if not isinstance(fn, dict):
                self.err(f"{cf}.function", "missing")
                continue
            if not isinstance(fn.get("name"), str) or not fn.get("name"):
                self.err(f"{cf}.function.name", "missing")
            args = fn.get("arguments")
            if not isinstance(args, str):
                self.err(f"{cf}.function.arguments", "must be a JSON string")
            else:
                try:
                    json.loads(args)
                except json.JSONDecodeError as exc:
                    self.err(f"{cf}.function.arguments", f"not valid JSON: {exc.msg}")
        return ids
