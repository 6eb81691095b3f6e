"""Helpers that start real local services for tests (Azurite)."""
