"""Access layer: reading local or remote data aligned in time, and the streaming loader."""

__all__ = []

