"""End-to-end tests against a real control plane (pytest -m e2e)."""
