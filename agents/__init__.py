"""Agents layer: LangGraph graphs, the LLM client, offline planner, CLI, control-plane API."""
