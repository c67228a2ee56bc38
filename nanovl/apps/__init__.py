"""User-facing workflows built on the public LLM API."""
