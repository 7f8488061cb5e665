"""Generate a catalog of realistic size and shape for benchmarks (FORMAT.md sections 1, 2.3, 8 and 9).

130,000 filelist rows by default: the real label/split/vendor mix (V02 only naturalistic), ~5 % of ids
with the ``A`` suffix (V00 only), sessions of 8-24 prompts with two participants (1 % singletons), whole
interactions packed into batches (train: 200 batches of ~40 archives; dev/test: <= 500 ids, archives of
8), partners shuffled into different archives. Participants, sessions and prompts are drawn from the
anchor tables when given, so metadata joins hit real rows.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path

# Real row counts per (label, split) (FORMAT.md 8.1 and 8.6), scaled to the requested size.
REAL_COUNTS = {
    ("improvised", "dev"): 684, ("improvised", "test"): 464, ("improvised", "train"): 34_602,
    ("naturalistic", "dev"): 1_496, ("naturalistic", "test"): 1_680, ("naturalistic", "train"): 90_444,
}
VENDOR_MIX = {  # chosen so that the overall mix is close to V03 34 %, V00 33 %, V02 23 %, V01 9 %
    "improvised": {"V00": 0.55, "V01": 0.15, "V03": 0.30},
    "naturalistic": {"V00": 0.25, "V01": 0.07, "V02": 0.32, "V03": 0.36},
}
HEADER = ["file_id", "label", "split", "batch_idx", "archive_idx", "has_imitator_movement",
          "has_annotation_1p", "has_annotation_3p"]
TRAIN_BATCHES = 200


def _anchor_pools(anchor_assets: Path | None):
    participants: dict[str, list[str]] = {}
    sessions: dict[str, list[str]] = {}
    prompts = [f"{i:08d}" for i in range(1312)]
    if anchor_assets is not None:
        with open(anchor_assets / "participants.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                participants.setdefault("V" + row["vendor_id"], []).append(row["participant_id"].rstrip("A"))
        with open(anchor_assets / "relationships.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                sessions.setdefault(row["vendor_id"], []).append(row["session_id"])
        with open(anchor_assets / "interactions.csv", newline="") as fh:
            prompts = [row["prompt_hash"] for row in csv.DictReader(fh)]
    return participants, sessions, prompts


def generate_rows(n_rows: int = 130_000, *, seed: int = 0, anchor_assets: Path | None = None) -> list[list]:
    rng = random.Random(seed)
    participants, sessions, prompts = _anchor_pools(anchor_assets)
    total_real = sum(REAL_COUNTS.values())
    # Session ids are unique within a vendor: the anchor's sessions first, then unused numbers.
    free_sessions: dict[str, list[str]] = {}
    for vendor in ("V00", "V01", "V02", "V03"):
        known = list(dict.fromkeys(sessions.get(vendor, [])))
        taken = set(known)
        rest = [f"{i:04d}" for i in range(10_000) if f"{i:04d}" not in taken]
        rng.shuffle(rest)
        free_sessions[vendor] = (rest + known[::-1])  # popped from the end: anchor sessions first
    train_total = sum(round(real * n_rows / total_real) for (_, split), real in REAL_COUNTS.items() if split == "train")
    train_capacity = -(-train_total // TRAIN_BATCHES) + 2
    rows: list[list] = []
    for (label, split), real in REAL_COUNTS.items():
        target = round(real * n_rows / total_real)
        vendors, weights = zip(*VENDOR_MIX[label].items())
        interactions: list[list[str]] = []
        count = 0
        while count < target:
            vendor = rng.choices(vendors, weights)[0]
            session = free_sessions[vendor].pop()
            people = participants.get(vendor) or [f"{i:04d}" for i in range(4000)]
            pair = rng.sample(people, 2)
            if vendor == "V00":  # the letter suffix exists only for V00 (FORMAT.md 1.1)
                pair = [p + "A" if rng.random() < 0.15 else p for p in pair]
            for prompt in rng.sample(prompts, rng.randint(8, 24)):
                key = f"{vendor}_S{session}_I{prompt}"
                members = pair[:1] if rng.random() < 0.01 else pair
                interactions.append([f"{key}_P{p}" for p in members])
                count += len(members)
                if count >= target:
                    break
        rows.extend(_pack(label, split, interactions, rng, train_capacity if split == "train" else 500))
    return rows


def _pack(label: str, split: str, interactions: list[list[str]], rng: random.Random, capacity: int) -> list[list]:
    """Whole interactions per batch, larger groups first (upstream create_batches), shuffled into archives."""
    per_archive = -(-capacity // 40) if split == "train" else 8
    rng.shuffle(interactions)
    interactions.sort(key=len, reverse=True)
    batches: list[list[str]] = [[]]
    for group in interactions:
        if len(batches[-1]) + len(group) > capacity:
            batches.append([])
        batches[-1].extend(group)
    out = []
    for b, ids in enumerate(batches):
        rng.shuffle(ids)
        for i, fid in enumerate(ids):
            v00, v03 = fid.startswith("V00"), fid.startswith("V03")
            out.append([fid, label, split, b, i // per_archive, int(v00), int(v03 and rng.random() < 0.01),
                        int((v00 or v03) and rng.random() < 0.02)])
    return out


def write_catalog(folder: Path, rows: list[list], *, anchor_assets: Path | None = None) -> Path:
    """Write filelist.csv plus the three join tables (anchor copies, or synthetic ones of the same size)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "filelist.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerows(rows)
    if anchor_assets is not None:
        for name in ("interactions.csv", "participants.csv", "relationships.csv"):
            shutil.copyfile(anchor_assets / name, folder / name)
    else:
        _write_synthetic_joins(folder, rows)
    return folder


def _write_synthetic_joins(folder: Path, rows: list[list]) -> None:
    rng = random.Random(1)
    with open(folder / "interactions.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "prompt_hash", "prompt_id_unique", "participant_a_prompt_text",
                         "participant_b_prompt_text", "ipc_a", "ipc_b", "interaction_type"])
        for i in range(1312):
            writer.writerow([i, f"{i:08d}", f"P{i:04d}_x", f"Tell your partner\nabout {i}.", "Listen.",
                             "APCP", "" if i % 2 else "ANCN", "ipc_conversation"])
    people = sorted({(r[0][1:3], r[0][21:]) for r in rows})[:4284]
    with open(folder / "participants.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["extraversion_raw", "agreeableness_raw", "conscientiousness_raw", "neuroticism_raw",
                         "openness_raw", "vendor_id", "participant_id"])
        for vendor, pid in people:
            traits = ["Undisclosed"] * 5 if rng.random() < 0.45 else [round(rng.uniform(1, 5), 4) for _ in range(5)]
            writer.writerow([*traits, vendor, pid])
    sessions = sorted({(r[0][:3], r[0][5:9]) for r in rows})[:5098]
    with open(folder / "relationships.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["vendor_id", "session_id", "relationship", "relationship_detail"])
        for vendor, session in sessions:
            writer.writerow([vendor, session, "stranger", "stranger"])
