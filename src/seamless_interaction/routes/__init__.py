"""Routes: the ways to bring files home (CDN per file, Hub archives, Hub members by Range)."""

__all__ = []

