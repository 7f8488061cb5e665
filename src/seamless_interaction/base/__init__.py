"""Base layer: the error tree, settings, the id grammar and byte-exact formats. Imports nothing of ours above it."""

__all__ = []

