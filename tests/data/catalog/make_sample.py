"""Cut the small real sample in this folder out of the anchor tables (run once; the output is committed).

    python tests/data/catalog/make_sample.py ../shared/data/anchor

Keeps whole dyads (both partners) and, for every table, exactly the rows those dyads join to, plus the few
rows the catalog tests need to see (a suffixed participant, a stem shared by two vendors, a session whose
relationship differs by vendor, a multi-line prompt without ipc_b). Cells are copied unchanged (csv module,
minimal quoting, as the originals).
"""

from __future__ import annotations

import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
# Dyads kept per pair list; improvised/train gets more so that partners split across archives are common.
PER_LIST = {"improvised/dev": 30, "improvised/test": 24, "improvised/train": 80, "naturalistic/dev": 30,
            "naturalistic/test": 30}
MUST_KEEP = {"V00_S0644_I00000125"}  # the suffixed participant P0299A and its partner


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def _write(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main(anchor: Path) -> None:
    rng = random.Random(10)
    kept_pairs: list[dict[str, str]] = []
    for name, n in PER_LIST.items():
        header, rows = _read(anchor / "filelists" / name / "metadata.csv")
        by_prompt = defaultdict(set)
        for r in rows:
            by_prompt[r["interaction"]].add(r["vendor"])
        # Prompts met under several vendors first: the catalog must keep them apart by session.
        shared = [r for r in rows if len(by_prompt[r["interaction"]]) > 1]
        must = [r for r in rows if f"{r['vendor']}_{r['session']}_{r['interaction']}" in MUST_KEEP]
        pick = must + rng.sample(shared, min(n // 3, len(shared)))
        rest = [r for r in rows if r not in pick]
        pick += rng.sample(rest, n - len(pick))
        pick.sort(key=lambda r: int(r[""]))
        _write(HERE / "filelists" / name / "metadata.csv", header, pick)
        kept_pairs += pick

    people = {(r[k][1:3], r[k][21:]) for r in kept_pairs for k in ("participant_0_id", "participant_1_id")}
    sessions = {(r["vendor"], r["session"][1:]) for r in kept_pairs}
    prompts = {r["interaction"][1:] for r in kept_pairs}

    header, rows = _read(anchor / "assets" / "participants.csv")
    by_key = {(r["vendor_id"], r["participant_id"]): r for r in rows}
    keep = {k for k in people if k in by_key} | {("00", "0299"), ("00", "0299A")}
    # A stem used by two vendors with different traits: ids are unique only within a vendor.
    twin = next(k for k in sorted(by_key) if k[0] != "00" and ("00", k[1]) in by_key
                and by_key[k]["extraversion_raw"] != by_key[("00", k[1])]["extraversion_raw"])
    keep |= {twin, ("00", twin[1])}
    _write(HERE / "assets" / "participants.csv", header,
           [r for r in rows if (r["vendor_id"], r["participant_id"]) in keep])

    header, rows = _read(anchor / "assets" / "relationships.csv")
    by_session = defaultdict(list)
    for r in rows:
        by_session[r["session_id"]].append(r)
    mixed = next(s for s, rs in sorted(by_session.items()) if len({r["relationship_detail"] for r in rs}) > 1)
    _write(HERE / "assets" / "relationships.csv", header,
           [r for r in rows if (r["vendor_id"], r["session_id"]) in sessions or r["session_id"] == mixed])

    header, rows = _read(anchor / "assets" / "interactions.csv")
    multiline = next(r["prompt_hash"] for r in rows if "\n" in r["participant_a_prompt_text"] and not r["ipc_b"])
    _write(HERE / "assets" / "interactions.csv", header,
           [r for r in rows if r["prompt_hash"] in prompts or r["prompt_hash"] == multiline])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
