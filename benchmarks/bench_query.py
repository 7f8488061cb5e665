"""SQL over the catalog: a files x interactions x participants join with two filters on 130k rows, warm.

Run: ``.venv/bin/python benchmarks/bench_query.py [--rows 130000] [--repeat 30]``

Generates a catalog of the real size and shape (``_catalog_gen``; the anchor tables are used for the
joins when ``../shared`` is there), opens the query engine (DuckDB views over the Arrow tables) and
times the join warm (median of ``--repeat`` runs after three warm-up runs). Baseline in the same run:
the same join and filters in pandas over the same tables. Pass: median under 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _catalog_gen import generate_rows, write_catalog  # noqa: E402
from bench_catalog import find_anchor  # noqa: E402

from seamless_interaction.catalog.tables import Catalog  # noqa: E402
from seamless_interaction.operations.query import QueryEngine  # noqa: E402

SQL = """
SELECT f.file_id, f.label, f.split, i.interaction_type, p.extraversion_raw
FROM files f
JOIN interactions i ON i.prompt_hash = f.prompt_hash
JOIN participants p ON p.vendor = f.vendor AND p.participant_id = f.participant_id
WHERE f.label = 'naturalistic' AND p.extraversion_raw > 3.5
"""


def timed(fn, repeat: int) -> tuple[float, object]:
    for _ in range(3):
        out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=130_000)
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp:
        anchor = find_anchor()
        folder = write_catalog(Path(tmp) / "assets", generate_rows(args.rows, anchor_assets=anchor),
                               anchor_assets=anchor)
        catalog = Catalog.load(str(folder), Path(tmp) / "cache")
        t0 = time.perf_counter()
        engine = QueryEngine(catalog)
        open_s = time.perf_counter() - t0
        ours, table = timed(lambda: engine.query(SQL), args.repeat)

        files = engine._arrow["files"].to_pandas()
        inter = catalog.table("interactions").to_pandas()
        people = catalog.table("participants").to_pandas()

        def pandas_join():
            f = files[files.label == "naturalistic"]
            m = f.merge(inter, on="prompt_hash").merge(people, on=["vendor", "participant_id"])
            return m[m.extraversion_raw > 3.5][["file_id", "label", "split", "interaction_type", "extraversion_raw"]]

        base, df = timed(pandas_join, max(5, args.repeat // 3))
        engine.close()
    assert len(df) == table.num_rows, (len(df), table.num_rows)
    print(f"catalog: {len(catalog)} files ({'anchor' if anchor else 'synthetic'} join tables); engine opened in "
          f"{open_s * 1e3:.0f} ms")
    print(f"join files x interactions x participants, 2 filters -> {table.num_rows} rows")
    print(f"  DuckDB views (ours): {ours * 1e3:.1f} ms median warm")
    print(f"  pandas merge (baseline): {base * 1e3:.1f} ms median warm  ({base / ours:.1f}x ours)")
    ok = ours < 0.050
    print("PASS" if ok else "FAIL", "(under 50 ms warm)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
