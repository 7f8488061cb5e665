"""Remote layer: the HTTP engine, remote tar indexes and URL layouts."""

__all__ = []

