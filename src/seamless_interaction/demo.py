"""``seamless-interaction demo``: the main job, end to end, on the embedded sample.

Builds the synthetic sample, serves it on loopback with the real URL layouts, downloads one
interaction pair (partners in different archives) by the CDN route and the archives holding it by
the Hub route into two separate roots, and checks that both routes produced identical files.
"""

from __future__ import annotations

import filecmp
import shutil
import time
from pathlib import Path

from seamless_interaction.base.config import DatasetConfig, default_cache_dir


def run_demo(workdir: Path | None = None, *, quiet: bool = False, app: bool = False) -> int:
    from seamless_interaction.fs import SeamlessInteractionFS
    from seamless_interaction.mirror import MirrorServer, build_mirror

    say = (lambda *a: None) if quiet else print
    workdir = Path(workdir) if workdir is not None else default_cache_dir() / "demo"
    # Start from empty download roots so that the demo really downloads (they are the demo's own).
    for sub in ("via-cdn", "via-hub", "cache"):
        shutil.rmtree(workdir / sub, ignore_errors=True)
    t0 = time.perf_counter()
    mirror_root = default_cache_dir() / "sample-mirror"
    info = build_mirror(mirror_root)
    say(f"[1/4] sample mirror: {len(info.file_ids)} file ids, {len(info.pairs)} pairs in {mirror_root} "
        f"({time.perf_counter() - t0:.1f} s)")
    with MirrorServer(mirror_root) as server:
        say(f"[2/4] serving on {server.url} (CDN {server.cdn_url}, Hub {server.hf_url})")

        def make_fs(root: Path) -> SeamlessInteractionFS:
            cfg = DatasetConfig(local_dir=root, cdn_url=server.cdn_url, hf_url=server.hf_url,
                                assets=server.assets_url, cache_dir=workdir / "cache")
            return SeamlessInteractionFS(cfg, quiet=quiet)

        # The pair to show: partners that sit in different archives, the case peers get wrong.
        missing = set(info.missing_archive_ids)
        candidates = [p for p in (info.split_pairs or info.pairs) if not missing & set(p)]
        pair = list(candidates[0])
        key = pair[0].rsplit("_P", 1)[0]
        with make_fs(workdir / "via-cdn") as fs_cdn:
            t1 = time.perf_counter()
            (got,) = fs_cdn.get_interaction_pairs(interaction_keys=[key])
            fs_cdn.download_batch_from_s3(got)
            meta = fs_cdn.get_interaction_details(key)
            say(f"[3/4] CDN route: {key} ({meta.get('interaction_type') or 'interaction'}) "
                f"-> {', '.join(got)} in {time.perf_counter() - t1:.1f} s")
            cdn_paths = {fid: fs_cdn.get_path_list_for_file_id_local(fid) for fid in got}
        with make_fs(workdir / "via-hub") as fs_hub:
            t2 = time.perf_counter()
            archives = sorted({(r.label, r.split, r.batch, r.archive)
                               for r in (fs_hub.catalog.record(f) for f in got)})
            for label, split, batch, archive in archives:
                fs_hub.download_archive_from_hf(archive, label=label, split=split, batch=batch)
            say(f"[4/4] Hub route: {len(archives)} archive(s) "
                f"{', '.join(f'{l}/{s}/{b:04d}/{a:04d}.tar' for l, s, b, a in archives)} "
                f"in {time.perf_counter() - t2:.1f} s")
            hub_paths = {fid: fs_hub.get_path_list_for_file_id_local(fid) for fid in got}
    mismatches = []
    for fid in got:
        by_ext_cdn = {Path(p).suffix: Path(p) for p in cdn_paths[fid]}
        by_ext_hub = {Path(p).suffix: Path(p) for p in hub_paths[fid]}
        for ext in (".wav", ".mp4", ".npz", ".json"):
            a, b = by_ext_cdn.get(ext), by_ext_hub.get(ext)
            if a is None or b is None or not filecmp.cmp(a, b, shallow=False):
                mismatches.append(f"{fid}{ext}")
    if mismatches:
        print(f"FAIL: the two routes differ for {', '.join(mismatches)}")
        return 1
    say(f"OK: both routes produced identical .wav/.mp4/.npz/.json for {' and '.join(got)} "
        f"({time.perf_counter() - t0:.1f} s in all). Files: {workdir}")
    if app:
        from seamless_interaction.app.launch import launch_app

        return launch_app(local_dir=workdir / "via-cdn", mirror_root=mirror_root)
    return 0
