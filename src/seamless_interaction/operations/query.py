"""SQL over every table: the catalog's four, the index's statistics and the archives, on DuckDB.

Views (one per table; DuckDB reads the Arrow and Parquet data in place):

* ``files``: filelist.csv, plus ``vendor``, ``session_key``, ``interaction_key``, ``participant_id``
  (``0299A``), ``session_id`` (``0809``) and ``prompt_hash`` (``00000125``) for joins;
* ``interactions``, ``participants``, ``relationships``: the other metadata tables (join
  participants on ``vendor, participant_id``, relationships on ``vendor, session_id``, interactions
  on ``prompt_hash``);
* ``file_stats``, ``interaction_stats``: the index (:mod:`seamless_interaction.operations.index`);
* ``archives``: label, split, batch, archive, size, members, n_files (size and members once indexed).

DuckDB is an optional dependency (``pip install seamless-interaction[index]``); only this module
imports it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from typing_extensions import Self

from seamless_interaction.base.errors import SeamlessError
from seamless_interaction.operations.index import (
    ARCHIVE_COLUMNS,
    IndexStaleError,
    NoIndexError,
    read_meta,
)

if TYPE_CHECKING:
    from seamless_interaction.catalog.tables import Catalog

__all__ = ["STATS_VIEWS", "VIEWS", "QueryEngine", "QueryError", "format_table"]

logger = logging.getLogger(__name__)

STATS_VIEWS = ("file_stats", "interaction_stats")
VIEWS = ("files", "interactions", "participants", "relationships", *STATS_VIEWS, "archives")
_LINE_RE = re.compile(r"^LINE (\d+): ?(.*)$")


class QueryError(SeamlessError, ValueError):
    """SQL that DuckDB could not run; the message names the line and column."""


def _duckdb():
    try:
        import duckdb
    except ImportError:  # pragma: no cover - the extra is installed in development
        raise SeamlessError("queries need DuckDB: pip install 'seamless-interaction[index]'") from None
    return duckdb


def _files_table(catalog: Catalog) -> pa.Table:
    t = catalog.table("filelist")
    ids = t["file_id"]
    return (t.append_column("participant_id", pc.utf8_slice_codeunits(ids, 21))
             .append_column("session_id", pc.utf8_slice_codeunits(ids, 5, 9))
             .append_column("prompt_hash", pc.utf8_slice_codeunits(ids, 11, 19)))


def _catalog_archives(catalog: Catalog) -> pa.Table:
    rows: dict[str, list[Any]] = {k: [] for k in ARCHIVE_COLUMNS}
    for lab, spl in catalog.labels_splits():
        for b in catalog.batches(lab, spl):
            for a in catalog.archives(lab, spl, b):
                vals = {"label": lab, "split": spl, "batch": b, "archive": a,
                        "n_files": len(catalog.archive_file_ids(lab, spl, b, a))}
                for k, col in rows.items():
                    col.append(vals.get(k))
    return pa.table({k: pa.array(v, type=ARCHIVE_COLUMNS[k]) for k, v in rows.items()})


class QueryEngine:
    """A DuckDB connection with the views above, for one catalog and (optionally) one index folder.

    ``filelist_sha256`` is the current catalog's; an index built from another filelist raises
    :class:`IndexStaleError` when a statistics view is used, rather than mixing versions.
    """

    def __init__(self, catalog: Catalog, index_folder: Path | None = None, *,
                 filelist_sha256: str | None = None) -> None:
        duckdb = _duckdb()
        self._duckdb = duckdb
        self.con = duckdb.connect()
        self.index_folder = index_folder
        self.stale: str | None = None
        self._arrow: dict[str, pa.Table] = {"files": _files_table(catalog)}
        for name in ("interactions", "participants", "relationships"):
            self._arrow[name] = catalog.table(name)
        meta = read_meta(index_folder) if index_folder is not None else None
        have_index = meta is not None and all((index_folder / f"{v}.parquet").exists() for v in STATS_VIEWS)
        if have_index and filelist_sha256 is not None and meta["version"]["filelist_sha256"] != filelist_sha256:
            self.stale = (f"the index in {index_folder} was built for another catalog version; "
                          "rebuild it with `seamless-interaction index build`")
            have_index = False
        for name, table in self._arrow.items():
            self.con.register(name, table)
        if have_index:
            for name in (*STATS_VIEWS, "archives"):
                path = str(index_folder / f"{name}.parquet").replace("'", "''")
                self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")
        else:
            self.con.register("archives", _catalog_archives(catalog))
        self.has_index = have_index

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, sql: str) -> pa.Table:
        """Run ``sql``; the result as a pyarrow Table.

        Raises:
            QueryError: bad SQL (one line naming line and column).
            NoIndexError: a statistics view was used before any index was built.
            IndexStaleError: the index was built for another catalog version.
        """
        try:
            rel = self.con.sql(sql)
            return rel.to_arrow_table() if rel is not None else pa.table({})
        except self._duckdb.Error as exc:
            raise self._translate(sql, exc) from None

    def _translate(self, sql: str, exc: Exception) -> SeamlessError:
        text = str(exc)
        if not self.has_index and isinstance(exc, self._duckdb.CatalogException):
            for view in STATS_VIEWS:
                if re.search(rf"\b{view}\b", text):
                    if self.stale:
                        return IndexStaleError(self.stale)
                    return NoIndexError(f"table {view} needs the index: run `seamless-interaction index build` "
                                        "(or fs.build_index()) first")
        return QueryError(_one_line(sql, text))


def _one_line(sql: str, text: str) -> str:
    """DuckDB's multi-line message as one line with the line and column of the caret."""
    lines = text.splitlines()
    head = lines[0] if lines else text
    where = ""
    for i, line in enumerate(lines):
        m = _LINE_RE.match(line)
        if m and i + 1 < len(lines) and "^" in lines[i + 1]:
            n = int(m.group(1))
            snippet = m.group(2)
            caret = lines[i + 1].index("^") - (len(line) - len(snippet))
            src = sql.splitlines()[n - 1] if n - 1 < len(sql.splitlines()) else ""
            core = snippet.removeprefix("...").removesuffix("...")
            offset = src.find(core)
            lead = len(snippet) - len(snippet.removeprefix("..."))
            col = (max(offset, 0)) + max(0, caret - lead) + 1
            where = f" (line {n}, column {col})"
            break
    if not where:
        # Some binder errors carry no caret; the first quoted name in the message locates them.
        m = re.search(r'"([^"]+)"', head)
        hit = re.search(rf"\b{re.escape(m.group(1))}\b", sql, re.IGNORECASE) if m else None
        if hit:
            n = sql.count("\n", 0, hit.start()) + 1
            col = hit.start() - (sql.rfind("\n", 0, hit.start()) + 1) + 1
            where = f" (line {n}, column {col})"
    return f"SQL error{where}: {head}"


# ------------------------------------------------------------------------------------- output
def format_table(table: pa.Table, fmt: str = "table", *, max_rows: int | None = 50) -> str:
    """``table`` (aligned text), ``csv``, ``json`` (one object per row) or ``ids`` (the file_id column)."""
    if fmt == "ids":
        col = "file_id" if "file_id" in table.column_names else None
        if col is None:
            raise QueryError(f"--ids needs a file_id column; the result has {table.column_names}")
        return "\n".join(str(x) for x in table[col].to_pylist() if x is not None)
    if fmt == "csv":
        import io

        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        return buf.getvalue().decode().rstrip("\n")
    if fmt == "json":
        import json

        return "\n".join(json.dumps(r, default=str) for r in table.to_pylist())
    rows = table.to_pylist()
    shown = rows if max_rows is None else rows[:max_rows]
    names = table.column_names
    cells = [[_cell(r[n]) for n in names] for r in shown]
    widths = [max([len(n)] + [len(c[i]) for c in cells]) for i, n in enumerate(names)]
    out = ["  ".join(n.ljust(w) for n, w in zip(names, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    if len(rows) > len(shown):
        out.append(f"... {len(rows) - len(shown)} more rows ({len(rows)} in all; --csv or --json for every row)")
    return "\n".join(out)


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
