"""Typed tools: one pydantic input and output model per tool; the dispatcher validates,
authorizes, runs and audits every call (for agents and humans alike)."""
