"""Operations: work over a whole local tree or selection (verify, index, export)."""

__all__ = []

