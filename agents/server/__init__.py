"""The team control plane (``agent serve``): a FastAPI app over the same services and
dispatcher as the CLI — REST, an OpenAI-compatible agent endpoint, an approval console — and
the HTTP client the CLI uses in server mode (``agents.server.client``, no FastAPI import)."""
