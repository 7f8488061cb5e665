"""Export local interactions to Lhotse, ELAN, Praat TextGrid, RTTM, Rerun and clips.

The public home of :mod:`seamless_interaction.operations.export` (``seamless-interaction export`` on
the command line). Needs the ``export`` extra: ``pip install 'seamless-interaction[export]'``.

>>> from seamless_interaction.export import export
>>> export(["V00_S0809_I00000582"], to="lhotse", out="manifests", local_dir="~/datasets/seamless_interaction")  # doctest: +SKIP
"""

from __future__ import annotations

from seamless_interaction.operations.export import FORMATS, ExportResult, export

__all__ = ["FORMATS", "ExportResult", "export"]
