"""Catalog layer: the four metadata tables and lookups over them. Pure: no network, no local files beyond its cache."""

__all__ = []

