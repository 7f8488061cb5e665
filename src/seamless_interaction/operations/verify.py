"""``verify``: audit a local tree (:mod:`.audit`, with the file checks of :mod:`.checks`) and, with
``repair``, refetch exactly what is bad (:mod:`.repair`).

The facade (``SeamlessInteractionFS.verify``) hands this module the catalog, manifest and transfer it
needs; nothing here imports the facade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from seamless_interaction.operations.audit import (
    FAILING_KINDS,
    KINDS,
    Problem,
    Report,
    audit,
    check_scope,
)
from seamless_interaction.operations.checks import (
    check_json,
    check_mp4,
    check_npz,
    check_wav,
)

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog
    from seamless_interaction.local.manifest import Manifest
    from seamless_interaction.remote.transfer import Transfer

__all__ = ["FAILING_KINDS", "KINDS", "Problem", "Report", "check_json", "check_mp4", "check_npz", "check_wav",
           "verify"]


def verify(
    local_dir: Path | str,
    catalog: Catalog | Callable[[], Catalog],
    *,
    label: str | None = None,
    split: str | None = None,
    batch: int | None = None,
    only: Iterable[str] | None = None,
    manifest: Manifest | None = None,
    deep: bool = False,
    check_remote: bool = False,
    repair: bool = False,
    transfer: Transfer | None = None,
    cdn_url: str | None = None,
    hf_url: str | None = None,
    cache_dir: Path | str | None = None,
    workers: int = 4,
    confirm_video: bool = True,
) -> Report:
    """Audit ``local_dir`` (and with ``repair``, fix it); returns a :class:`Report`.

    Scope. Without filters, the archive folders present locally (or recorded as extracted) and the
    archives of every file id the manifest says was asked for are audited; each file id is expected to
    hold what was asked for (see :mod:`.audit`). ``label``/``split``/``batch`` narrow that, and also make
    every catalog archive matching them expected. ``only`` (e.g. ``("npz", "json")``) checks just those
    modalities. ``catalog`` may be a zero-argument callable: it is then called only once the arguments
    have been checked, so a bad argument fails before the catalog is fetched.

    Raises NotDownloadedError if ``local_dir`` does not exist or is a file, InvalidIdError for a bad
    label, split, batch (also one the catalog does not have) or modality.

    ``deep`` adds a sha256 of every file whose manifest entry records one. ``check_remote`` HEADs every
    archive in scope. ``repair`` needs ``transfer``, ``cdn_url`` and ``hf_url``. Problems found in the
    repaired bundles afterwards stay in the report.

    >>> report = verify("~/datasets/seamless_interaction", fs.catalog, manifest=fs.manifest)
    >>> print(report.summary()); sys.exit(report.exit_code)
    """
    scope = check_scope(local_dir, label=label, split=split, batch=batch, only=only)
    if repair and (transfer is None or cdn_url is None or hf_url is None):
        raise ValueError("verify: repair=True needs transfer, cdn_url and hf_url")
    cat = catalog() if callable(catalog) else catalog
    report, jobs = audit(scope, cat, manifest=manifest, deep=deep, check_remote=check_remote,
                         transfer=transfer, hf_url=hf_url, workers=workers, confirm_video=confirm_video)
    if repair:
        from seamless_interaction.operations.repair import repair as run_repair

        assert transfer is not None and cdn_url is not None and hf_url is not None
        run_repair(report, jobs, cat, manifest=manifest, transfer=transfer, cdn_url=cdn_url, hf_url=hf_url,
                   cache_dir=cache_dir, deep=deep, confirm_video=confirm_video, workers=workers)
    return report
