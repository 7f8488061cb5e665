"""Local layer: every local path and temp name, safe extraction, the manifest. Knows no network."""

__all__ = []

