"""Test fakes: a scripted OpenAI-compatible server and other stand-ins for external services."""
