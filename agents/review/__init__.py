"""The ML-aware pull-request review bot: deterministic checks with stable rule ids, read-only
registry lookups, optional LLM reviews, GitHub reviews and SARIF (see docs/review.md)."""
