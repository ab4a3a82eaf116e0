"""The tool contract: name, description, input/output models, permission, side-effect class."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, model_validator

SideEffect = Literal["read", "write", "external"]


class FieldRenamed(FutureWarning):
    """A tool input used a field's old name (accepted, with this warning, for one release)."""


class ToolInput(BaseModel):
    # Unknown fields are an error, not silently dropped: a model that invents an argument
    # should hear about it.
    model_config = ConfigDict(extra="forbid")
    # Old field name -> new one, for inputs whose field was renamed (``target`` meant four
    # things; now ``environment``, ``label_column``, ``goal`` and ``platform``).
    renamed_fields: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_renamed(cls, data: Any) -> Any:
        if not cls.renamed_fields or not isinstance(data, dict):
            return data
        for old, new in cls.renamed_fields.items():
            if old in data and old not in cls.model_fields:
                if new in data:
                    raise ValueError(f"give {new!r} only ({old!r} is its old name)")
                warnings.warn(
                    f"tool input field {old!r} is now {new!r}; the old name is accepted for "
                    "one release",
                    FieldRenamed,
                    stacklevel=2,
                )
                data = {**{k: v for k, v in data.items() if k != old}, new: data[old]}
        return data


class ToolError(BaseModel):
    code: str
    message: str
    hint: str = ""


class ToolResult(BaseModel):
    ok: bool
    tool: str
    output: dict[str, Any] | None = None
    error: ToolError | None = None

    def for_model(self) -> dict[str, Any]:
        """What an LLM sees: the output, or the error with its hint."""
        return self.model_dump(exclude_none=True)


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_model: type[ToolInput]
    output_model: type[BaseModel]
    permission: str
    side_effect: SideEffect
    func: Callable[..., BaseModel]
    # A further permission that some calls need, read from the validated arguments (e.g.
    # ``deploy:production`` when ``environment`` is production). The dispatcher checks it
    # before the tool runs, so no permission is refused after the audit says allowed.
    also_requires: Callable[[Any], str | None] | None = None
    # Only people call it (agents and workflow principals are refused by the dispatcher).
    people_only: bool = False
    # A rule about who may make this call that depends on stored facts rather than on a role
    # (separation of duties: no review of your own version). ``guard(call, args)`` returns
    # the reason to refuse, or None; the dispatcher audits a refusal as denied.
    guard: Callable[[Any, Any], str | None] | None = None

    def extra_permission(self, args: ToolInput) -> str | None:
        """The further permission this call needs, if any."""
        return self.also_requires(args) if self.also_requires is not None else None

    def json_schema(self) -> dict[str, Any]:
        return self.input_model.model_json_schema()

    def openai_spec(self) -> dict[str, Any]:
        schema = self.json_schema()
        schema.pop("title", None)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": schema},
        }


CATALOG: dict[str, Tool] = {}
# Steps of our own workflows (e.g. opening an approval request once QA has passed): called
# through the dispatcher by workflow principals only, so they are authorized and audited, but
# listed in no catalog an agent, an LLM or `agent tool call` can see.
INTERNAL: dict[str, Tool] = {}


def tool(
    *,
    permission: str,
    side_effect: SideEffect,
    internal: bool = False,
    also_requires: Callable[[Any], str | None] | None = None,
    people_only: bool = False,
    guard: Callable[[Any, Any], str | None] | None = None,
) -> Callable[[Callable[..., BaseModel]], Callable[..., BaseModel]]:
    """Register ``func(call, args: InputModel) -> OutputModel`` as a tool named after the function.

    The first line of the docstring is the description the LLM sees. ``permission`` is what
    every call needs (and what decides whether an LLM is shown the tool); ``also_requires``
    names a further permission that depends on the arguments; ``people_only`` refuses every
    caller that is not a person; ``guard`` refuses a caller by a rule over stored facts. The
    dispatcher checks them all before the tool runs: a tool never refuses a caller for a
    permission it did not declare.
    """

    def register(func: Callable[..., BaseModel]) -> Callable[..., BaseModel]:
        hints = get_type_hints(func)
        params = list(inspect.signature(func).parameters)
        input_model, output_model = hints[params[1]], hints["return"]
        doc = inspect.getdoc(func) or ""
        name = func.__name__
        if name in CATALOG or name in INTERNAL:
            raise RuntimeError(f"tool {name} registered twice")
        (INTERNAL if internal else CATALOG)[name] = Tool(
            name,
            doc.splitlines()[0] if doc else name,
            input_model,
            output_model,
            permission,
            side_effect,
            func,
            also_requires,
            people_only,
            guard,
        )
        return func

    return register


def load_catalog() -> dict[str, Tool]:
    """Import every tool module so the catalog is complete."""
    from tools import (  # noqa: F401
        abtest_tools,
        byom_tools,
        data_tools,
        deployment_tools,
        design_tools,
        evaluation_tools,
        experiment_tools,
        feature_tools,
        finetune_tools,
        monitoring_tools,
        optimizer_tools,
        pipeline_tools,
        promotion_tools,
        registry_tools,
        scaffold_tools,
        training_tools,
        validation_tools,
    )

    return CATALOG
