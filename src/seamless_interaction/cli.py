"""Command line: ``seamless-interaction`` (also ``python -m seamless_interaction``).

Every command exits non-zero with a one-line ``error:`` message on bad input or failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

from seamless_interaction import __version__
from seamless_interaction.base.errors import InvalidIdError, SeamlessError, UnknownIdError
from seamless_interaction.base.ids import ArchiveRef

__all__ = [
    "build_parser",
    "cmd_app",
    "cmd_demo",
    "cmd_download",
    "cmd_export",
    "cmd_index",
    "cmd_info",
    "cmd_mirror",
    "cmd_query",
    "cmd_sample",
    "cmd_verify",
    "main",
]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the one ``error:`` line every other failure gets."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _local_dir(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; give a folder, e.g. --local-dir ~/datasets/seamless_interaction")
    return Path(text)


def _int_in(lo: int, hi: int | None, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[lo, hi]``, else a message saying what was expected."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < lo or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"{n}: expected {what}")
        return n

    return parse


_port = _int_in(0, 65535, "a port number 0-65535 (0 picks a free one)")
_count = _int_in(1, None, "a count of at least 1")
_index = _int_in(0, 9999, "a batch or archive number from 0 to 9999")


def _seconds(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(x) and x >= 0.5):
        raise argparse.ArgumentTypeError(f"{text}: expected a number of seconds >= 0.5")
    return x


def _add_dataset_options(p: argparse.ArgumentParser, *, split_option: bool = True) -> None:
    g = p.add_argument_group("dataset")
    g.add_argument("--local-dir", type=_local_dir, help="local dataset root (default ~/datasets/seamless_interaction)")
    g.add_argument("--label", choices=("improvised", "naturalistic"), help="default label (improvised)")
    if split_option:  # `download --split` names a whole LABEL/SPLIT instead
        g.add_argument("--split", dest="split_name", choices=("train", "dev", "test"), help="default split (dev)")
    g.add_argument("--cdn-url", help="CDN base URL (env SEAMLESS_INTERACTION_CDN_URL)")
    g.add_argument("--hf-url", help="Hub resolve base URL (env SEAMLESS_INTERACTION_HF_URL)")
    g.add_argument("--assets", help="folder or base URL of the metadata tables (env SEAMLESS_INTERACTION_ASSETS)")
    g.add_argument("--workers", type=_count, help="concurrent connections")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _make_fs(args):
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS

    kw = {}
    if args.local_dir is not None:
        kw["local_dir"] = args.local_dir
    if getattr(args, "label", None):
        kw["label"] = args.label
    if getattr(args, "split_name", None):
        kw["split"] = args.split_name
    for field, attr in (("cdn_url", "cdn_url"), ("hf_url", "hf_url"), ("assets", "assets"), ("num_workers", "workers")):
        if getattr(args, attr, None):
            kw[field] = getattr(args, attr)
    return SeamlessInteractionFS(DatasetConfig(**kw), quiet=args.quiet, lazy=True)


def _parse_archive_spec(text: str, parts: int) -> tuple:
    from seamless_interaction.base.ids import validate_index, validate_label, validate_split

    bits = text.strip("/").split("/")
    if len(bits) != parts:
        shape = "LABEL/SPLIT/BATCH/ARCHIVE" if parts == 4 else ("LABEL/SPLIT/BATCH" if parts == 3 else "LABEL/SPLIT")
        raise InvalidIdError(f"{text!r}: expected {shape}, e.g. improvised/dev/0/3")
    try:
        nums = tuple(validate_index(b, what) for b, what in zip(bits[2:], ("batch", "archive")))
        return (validate_label(bits[0]), validate_split(bits[1]), *nums)
    except InvalidIdError as exc:
        raise InvalidIdError(f"{text!r}: {exc}") from None


def _parse_only(text: str) -> tuple[str, ...]:
    from seamless_interaction.base.ids import validate_modalities

    try:
        return validate_modalities(tuple(x.strip() for x in text.split(",") if x.strip()))
    except InvalidIdError:
        raise InvalidIdError(f"--only {text!r}: expected a comma list of json, mp4, npz, wav") from None


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if x < 1024 or unit == "TiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return str(x)


# ---------------------------------------------------------------------------------------- commands
def cmd_sample(args) -> int:
    with _make_fs(args) as fs:
        ids = fs.sample_random_file_ids(num_samples=args.num, seed=args.seed,
                                        preferred_vendors_only=not args.all_vendors)
        if len(ids) < args.num:
            where = f"{fs.config.label}/{fs.config.split}"
            vendors = "" if args.all_vendors else " from the preferred vendors (--all-vendors widens it)"
            raise InvalidIdError(f"sample -n {args.num}: only {len(ids)} file ids exist in {where}{vendors}")
    print("\n".join(ids))
    return 0


def _collect_file_ids(fs, args) -> list[str]:
    from seamless_interaction.base.ids import validate_file_id

    ids = [validate_file_id(f) for f in args.file_ids]
    for key in args.pair or []:
        pairs = fs.get_interaction_pairs(interaction_keys=[key])
        if not pairs:
            ids.extend(fs.catalog.interaction_file_ids(key))  # singleton interaction
        for pair in pairs:
            ids.extend(pair)
    for key in args.session or []:
        for group in fs.get_session_groups(session_keys=[key], interactions_per_session=10**6):
            ids.extend(group)
    seen, out = set(), []
    for f in ids:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


def _ids_from_file(path: Path) -> list[str]:
    """File ids, one per line (the first comma field; a ``file_id`` header line and ``#`` comments skipped)."""
    from seamless_interaction.base.ids import validate_file_id

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidIdError(f"--ids-from {path}: cannot read it ({exc.strerror})") from None
    out = []
    for line in text.splitlines():
        field = line.split(",", 1)[0].strip().strip('"')
        if field and not field.startswith("#") and field != "file_id":
            out.append(validate_file_id(field))
    return out


def _ids_of_table(fs, table) -> list[str]:
    """File ids of a query's table: its ``file_id`` column, or the partners of its ``interaction_key``s."""
    if "file_id" in table.column_names:
        return [f for f in table["file_id"].to_pylist() if f]
    if "interaction_key" in table.column_names:
        return [f for k in table["interaction_key"].to_pylist() if k for f in fs.catalog.interaction_file_ids(k)]
    raise InvalidIdError(f"the query must return a file_id (or interaction_key) column; it returned "
                         f"{table.column_names}")


def _link(fs, args, file_ids):
    from seamless_interaction.operations.plan import LinkModel, measure_link
    from seamless_interaction.remote.urls import hub_archive_url

    conns = fs.config.num_workers
    if args.latency is not None or args.bandwidth is not None:
        return LinkModel(args.latency if args.latency is not None else 0.05,
                         args.bandwidth if args.bandwidth is not None else 50e6, conns)
    rec = fs.catalog.record(file_ids[0])
    try:
        return measure_link(fs.transfer, hub_archive_url(fs.config.hf_url, rec.label, rec.split, rec.batch,
                                                         rec.archive), connections=conns)
    except SeamlessError:
        return LinkModel(connections=conns)


def _download_planned(fs, args, file_ids, only) -> int:
    if not file_ids:
        print("the selection holds no file ids; nothing to download")
        return 0
    for fid in file_ids:
        fs.catalog.record(fid)
    plan = fs.plan_download(file_ids, modalities=only or ("json", "mp4", "npz", "wav"), link=_link(fs, args, file_ids))
    if args.plan or args.dry_run:
        print(plan.summary())
        return 0
    t0 = time.perf_counter()
    paths = fs.execute_plan(plan)
    print(f"{len(file_ids)} file ids ({len(paths)} paths) in {fs.local_dir} in {time.perf_counter() - t0:.1f} s "
          f"(estimated {plan.total().seconds:.1f} s)")
    return 0


def cmd_download(args) -> int:
    with _make_fs(args) as fs:
        only = _parse_only(args.only) if args.only is not None else None
        if args.query or args.ids_from:
            ids = _ids_from_file(args.ids_from) if args.ids_from else []
            if args.query:
                table = fs.query(args.query)
                if table.num_rows == 0:
                    print("the query returned no rows; nothing to download")
                    return 0
                ids += _ids_of_table(fs, table)
            ids += _collect_file_ids(fs, args)
            return _download_planned(fs, args, list(dict.fromkeys(ids)), only)
        file_ids = _collect_file_ids(fs, args)
        if args.plan:
            return _download_planned(fs, args, file_ids, only)
        archives = [_parse_archive_spec(a, 4) for a in args.archive or []]
        for spec in args.batch or []:
            label, split, b = _parse_archive_spec(spec, 3)
            archives.extend((label, split, b, a) for a in fs.list_archives(label, split, b))
        splits = [_parse_archive_spec(s, 2) for s in args.split or []]
        if not (file_ids or archives or splits):
            raise InvalidIdError("nothing to download: give FILE_IDs, --pair, --session, --archive, --batch or --split")
        # Whole archives (the one route that can keep a .tar) unless --only, --split or --from hub reroute them.
        whole = bool(archives) and not only and not splits and args.source != "hub"
        if args.source == "cdn" and (archives or splits or only):
            raise InvalidIdError("--from cdn fetches file ids; --archive, --batch, --split and --only read Hub "
                                 "archives (drop --from cdn, or name file ids instead)")
        if args.keep_tar and not whole:
            raise InvalidIdError("--keep-tar keeps whole archives as .tar: it needs --archive or --batch, "
                                 "without --only or --split")
        for fid in file_ids:
            fs.catalog.record(fid)  # unknown ids fail before anything is fetched
        if args.ray is not None and not args.dry_run:
            return _download_on_ray(fs, args, file_ids, archives, splits, only)
        if only or args.source == "hub" or splits:
            return _download_members(fs, args, file_ids, archives, splits, only or ("json", "mp4", "npz", "wav"))
        if args.dry_run:
            return _dry_run(fs, file_ids, archives)
        if archives:
            paths = fs.download_archives(archives, extract=not args.keep_tar)
            for ref, path in zip(archives, paths):
                print(f"archive {ArchiveRef(*ref)}.tar -> {path}")
        if file_ids:
            results = fs.gather_file_ids(file_ids)
            for fid, paths in zip(file_ids, results):
                print(f"{fid} -> {paths['npz'].parent}")
    return 0


def _download_on_ray(fs, args, file_ids, archives, splits, only) -> int:
    from seamless_interaction.ray import download

    res = download([*file_ids, *archives, *splits], only=only, dest=fs.local_dir, config=fs.config,
                   catalog=fs.catalog, source=args.source, keep_tar=args.keep_tar, address=args.ray or None)
    print(f"{res.files} files in {res.dest} from {res.tasks} Ray tasks ({res.records} manifest records)")
    return 0


def _download_members(fs, args, file_ids, archives, splits, only) -> int:
    if args.dry_run:
        plan = fs.plan_members(file_ids=file_ids, archives=archives, splits=splits, modalities=only)
        ratio = plan["archive_bytes"] / plan["bytes"] if plan["bytes"] else float("inf")
        print(f"{'+'.join(only)} from {plan['archives']} archive(s): {_fmt_bytes(plan['bytes'])} to fetch "
              f"({plan['bytes']} bytes) instead of {_fmt_bytes(plan['archive_bytes'])} of whole archives "
              f"({ratio:.1f}x less); nothing was downloaded (--dry-run)")
        return 0
    paths = fs.fetch_members_for(file_ids=file_ids, archives=archives, splits=splits, modalities=only)
    print(f"{len(paths)} files in {fs.local_dir}")
    return 0


def _dry_run(fs, file_ids, archives) -> int:
    from seamless_interaction.remote.urls import hub_archive_url

    total = 0
    for label, split, b, a in archives:
        size = fs.get_tar_archive_bytes(label, split, b, a)
        total += size
        print(f"archive {hub_archive_url(fs.config.hf_url, label, split, b, a)}  {_fmt_bytes(size)}")
    if file_ids:
        urls = [u for fid in file_ids for u in fs.get_path_list_for_file_id_s3(fid)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            infos = list(pool.map(lambda u: fs.transfer.head(u, optional=True), urls))
        present = [(u, i) for u, i in zip(urls, infos) if i is not None]
        size = sum(i.size or 0 for _, i in present)
        total += size
        print(f"{len(file_ids)} file ids: {len(present)} of {len(urls)} CDN objects present, {_fmt_bytes(size)}")
    print(f"total: {_fmt_bytes(total)} ({total} bytes); nothing was downloaded (--dry-run)")
    return 0


def cmd_index(args) -> int:
    if args.batch is not None and not (args.label and args.split_name):
        raise InvalidIdError("--batch needs --label and --split")
    with _make_fs(args) as fs:
        archives = [_parse_archive_spec(a, 4) for a in args.archive or []] or None
        if args.ray is not None:
            from seamless_interaction.ray import build_index

            selection = archives or [(ls[0], ls[1], *([args.batch] if args.batch is not None else []))
                                     for ls in fs.catalog.labels_splits()
                                     if (args.label in (None, ls[0]) and args.split_name in (None, ls[1]))]
            report = build_index(selection, config=fs.config, catalog=fs.catalog, route=args.route,
                                 address=args.ray or None)
        else:
            report = fs.build_index(label=args.label, split=args.split_name, batch=args.batch, archives=archives,
                                    route=args.route)
    print(report.summary())
    return 1 if report.failed else 0


def cmd_query(args) -> int:
    from seamless_interaction.operations.query import format_table

    sql = args.sql
    if sql == "-":
        sql = sys.stdin.read()
    with _make_fs(args) as fs:
        table = fs.query(sql)
    if table.num_rows == 0:
        print("the query returned no rows", file=sys.stderr)
        return 0
    fmt = "ids" if args.ids else "csv" if args.csv else "json" if args.json else "table"
    print(format_table(table, fmt, max_rows=None if args.all else 50))
    return 0


def cmd_info(args) -> int:
    from seamless_interaction.base.ids import classify_key

    kind = classify_key(args.key)
    with _make_fs(args) as fs:
        cat = fs.catalog
        if kind == "file":
            rec = cat.record(args.key)
            out = {"file": rec.__dict__, "interaction": cat.interaction_metadata(rec.interaction_key),
                   "local_files": fs.get_path_list_for_file_id_local(rec.file_id)}
        elif kind == "interaction":
            meta = cat.interaction_metadata(args.key)
            local = {p["file_id"]: fs.get_path_list_for_file_id_local(p["file_id"]) for p in meta["participants"]}
            out = {"interaction": meta, "local_files": local}
        else:
            out = {"session": args.key, "relationship": cat.relationship(*args.key.split("_")),
                   "interactions": cat.session_interactions(args.key)}
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_mirror(args) -> int:
    from seamless_interaction.mirror import MirrorSpec, build_mirror
    from seamless_interaction.mirror.server import serve

    if args.mirror_cmd == "build":
        info = build_mirror(args.dir, MirrorSpec() if args.duration is None else MirrorSpec(duration_s=args.duration))
        print(f"mirror in {info.root}: {len(info.file_ids)} file ids, {len(info.pairs)} pairs")
        return 0
    if not (Path(args.dir) / "mirror.json").exists():
        raise InvalidIdError(f"{args.dir}: not a mirror (no mirror.json); "
                             f"run `seamless-interaction mirror build {args.dir}` first")
    serve(args.dir, host=args.host, port=args.port, latency_s=args.latency, bandwidth_bps=args.bandwidth,
          total_bps=args.total_bandwidth,
          banner=f"serving {args.dir}; point the toolkit at it with SEAMLESS_INTERACTION_CDN_URL, "
                 "SEAMLESS_INTERACTION_HF_URL and SEAMLESS_INTERACTION_ASSETS (Ctrl-C stops)")
    return 0


def cmd_verify(args) -> int:
    only = _parse_only(args.only) if args.only is not None else None
    with _make_fs(args) as fs:
        report = fs.verify(label=args.label, split=args.split_name, batch=args.batch, only=only, deep=args.deep,
                           check_remote=args.check_remote, repair=args.repair)
    print(report.to_json() if args.json else report.summary())
    return report.exit_code


def cmd_export(args) -> int:
    from tqdm.auto import tqdm

    from seamless_interaction.operations.export import export

    options: dict = {}
    if args.to == "clip":
        if args.start is None or args.end is None:
            raise InvalidIdError("--to clip needs --start and --end (seconds)")
        options.update(start_s=args.start, end_s=args.end, force_reencode=args.reencode)
    elif args.start is not None or args.end is not None or args.reencode:
        raise InvalidIdError("--start, --end and --reencode apply to --to clip only")
    if args.reference_video:
        if args.to != "rerun":
            raise InvalidIdError("--reference-video applies to --to rerun only")
        options["embed_video"] = False
    selection = list(args.selection)
    with _make_fs(args) as fs:
        local_dir = fs.local_dir
        if args.query:
            selection += _ids_of_table(fs, fs.query(args.query))
    out = args.out or Path(f"export-{args.to}")
    with tqdm(desc=f"export to {args.to}", unit="interaction", disable=args.quiet) as bar:
        def progress(done: int, total: int, key: str) -> None:
            bar.total = total
            bar.update(1)

        result = export(selection, to=args.to, out=out, local_dir=local_dir, progress=progress, **options)
    for key in result.skipped:
        print(f"skipped {key}: nothing exportable (see warnings)", file=sys.stderr)
    modes = f" (video: {', '.join(sorted(set(result.cut_modes.values())))})" if result.cut_modes else ""
    print(f"{len(result.interactions)} interaction(s) to {args.to}: {len(result.paths)} file(s) in {out}{modes}")
    return 0 if result.interactions or not result.skipped else EXIT_FAILURE


def cmd_app(args) -> int:
    from seamless_interaction.app.launch import launch_app

    return launch_app(local_dir=args.local_dir, mirror_root=args.mirror, port=args.port,
                      open_browser=not args.no_browser)


def cmd_demo(args) -> int:
    from seamless_interaction.demo import run_demo

    return run_demo(workdir=args.dir, quiet=args.quiet, app=args.app, duration_s=args.duration)


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="seamless-interaction", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("sample", help="print random file ids")
    _add_dataset_options(s)
    s.add_argument("-n", "--num", type=_count, default=1, help="how many (an error if fewer exist)")
    s.add_argument("--seed", type=int)
    s.add_argument("--all-vendors", action="store_true", help="not only the preferred vendors")
    s.set_defaults(func=cmd_sample)

    d = sub.add_parser("download", help="download file ids (CDN route) or archives (Hub route)")
    _add_dataset_options(d, split_option=False)
    d.add_argument("file_ids", nargs="*", metavar="FILE_ID")
    d.add_argument("--pair", action="append", metavar="INTERACTION_KEY", help="both participants of an interaction")
    d.add_argument("--session", action="append", metavar="SESSION_KEY", help="every interaction of a session")
    d.add_argument("--archive", action="append", metavar="L/S/B/A", help="one Hub archive, e.g. improvised/dev/0/3")
    d.add_argument("--batch", action="append", metavar="L/S/B", help="every archive of a batch")
    d.add_argument("--split", action="append", metavar="L/S", help="a whole split (with --only: just those members)")
    d.add_argument("--from", dest="source", choices=("cdn", "hub"), default=None,
                   help="route for file ids (default cdn; archives always come from the Hub)")
    d.add_argument("--only", metavar="EXTS", help="only these members from Hub archives, e.g. npz,json")
    d.add_argument("--keep-tar", action="store_true", help="keep archives as .tar instead of extracting")
    d.add_argument("--dry-run", action="store_true", help="print what would be fetched and how many bytes")
    d.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run the download as Ray tasks on the cluster at ADDRESS (default: $RAY_ADDRESS, "
                        "else a local Ray); needs the [ray] extra")
    d.add_argument("--query", metavar="SQL", help="download the file ids (or interaction keys) a query returns")
    d.add_argument("--ids-from", type=Path, metavar="FILE", help="download the file ids listed in FILE (one a line)")
    d.add_argument("--plan", action="store_true",
                   help="print the per-archive route plan (whole tar, Range members, CDN) and its estimate only")
    d.add_argument("--latency", type=float, help="link latency in s for the plan (default: measured)")
    d.add_argument("--bandwidth", type=float, help="bytes/s per connection for the plan (default: measured)")
    d.set_defaults(func=cmd_download)

    ix = sub.add_parser("index", help="build the conversation index (statistics from headers, json and VAD)")
    ixsub = ix.add_subparsers(dest="index_cmd", required=True)
    ib = ixsub.add_parser("build", help="index every archive in scope (incremental, resumable)")
    _add_dataset_options(ib)
    ib.add_argument("--batch", type=int, help="only this batch (with --label and --split)")
    ib.add_argument("--archive", action="append", metavar="L/S/B/A", help="only this archive")
    ib.add_argument("--route", choices=("auto", "hub", "cdn"), default="auto",
                    help="how to read each archive (default: the cheaper by estimate)")
    ib.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                    help="build on the Ray cluster at ADDRESS (default: $RAY_ADDRESS, else a local Ray); "
                         "one task per few archives, the driver writes the index")
    ib.set_defaults(func=cmd_index)

    qy = sub.add_parser("query", help="SQL over files, interactions, participants, relationships, file_stats, "
                                      "interaction_stats, archives")
    _add_dataset_options(qy)
    qy.add_argument("sql", help="the query ('-' reads it from stdin)")
    out = qy.add_mutually_exclusive_group()
    out.add_argument("--csv", action="store_true", help="CSV output")
    out.add_argument("--json", action="store_true", help="one JSON object per row")
    out.add_argument("--ids", action="store_true", help="only the file_id column, one a line")
    qy.add_argument("--all", action="store_true", help="print every row of a table (default: the first 50)")
    qy.set_defaults(func=cmd_query)

    i = sub.add_parser("info", help="catalog row, metadata joins and local state of an id or key")
    _add_dataset_options(i)
    i.add_argument("key", help="file id, interaction key or session key")
    i.set_defaults(func=cmd_info)

    m = sub.add_parser("mirror", help="build or serve a synthetic mirror of the dataset")
    msub = m.add_subparsers(dest="mirror_cmd", required=True, parser_class=_Parser)
    mb = msub.add_parser("build", help="write the embedded sample (both layouts + tables) into DIR")
    mb.add_argument("dir", type=Path)
    mb.add_argument("--duration", type=_seconds, default=None,
                    help="seconds per recording (default: long enough for the README's examples; 1 builds ~10x faster)")
    ms = msub.add_parser("serve", help="serve DIR over HTTP with the real URL layouts")
    ms.add_argument("dir", type=Path)
    ms.add_argument("--host", default="127.0.0.1")
    ms.add_argument("--port", type=_port, default=8000)
    ms.add_argument("--latency", type=float, default=0.0, help="seconds before each response's first byte")
    ms.add_argument("--bandwidth", type=float, default=None, help="bytes/s per connection")
    ms.add_argument("--total-bandwidth", type=float, default=None, help="bytes/s for the whole server")
    m.set_defaults(func=cmd_mirror)

    v = sub.add_parser("verify", help="audit local files against the catalog and manifest; --repair refetches")
    _add_dataset_options(v)
    v.add_argument("--batch", type=_index, help="only this batch (with --label and --split)")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.add_argument("--repair", action="store_true", help="refetch exactly what is bad")
    v.add_argument("--deep", action="store_true", help="also compare sha256 where the manifest has one")
    v.add_argument("--only", metavar="EXTS", help="check only these modalities, e.g. npz,json")
    v.add_argument("--check-remote", action="store_true", help="HEAD every archive in scope on the Hub")
    v.set_defaults(func=cmd_verify)

    from seamless_interaction.constants import EXPORT_FORMATS

    e = sub.add_parser("export", help="export local interactions to Lhotse, ELAN, Praat TextGrid, RTTM, Rerun "
                                      "or a clip", description="SELECTION: file ids, interaction keys, session keys "
                                      "or local folders (any layout).")
    _add_dataset_options(e)
    e.add_argument("selection", nargs="*", metavar="SELECTION")
    e.add_argument("--to", required=True, choices=EXPORT_FORMATS, help="output format")
    e.add_argument("--out", type=Path, help="output folder (default ./export-FORMAT)")
    e.add_argument("--query", help="select by an index query (needs the local index)")
    e.add_argument("--start", type=float, help="clip start, seconds")
    e.add_argument("--end", type=float, help="clip end, seconds")
    e.add_argument("--reencode", action="store_true", help="clip: always re-encode the video")
    e.add_argument("--reference-video", action="store_true",
                   help="rerun: reference the MP4s instead of embedding them")
    e.set_defaults(func=cmd_export)

    ap = sub.add_parser("app", help="open the browser app (explore, download, view interactions)")
    ap.add_argument("--local-dir", type=_local_dir, help="dataset root the app starts on")
    ap.add_argument("--mirror", type=Path, help="serve this mirror build and use it instead of the real endpoints")
    ap.add_argument("--port", type=_port, default=None)
    ap.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    ap.set_defaults(func=cmd_app)

    dm = sub.add_parser("demo", help="build and serve the sample, download a pair by both routes, compare")
    dm.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    dm.add_argument("--app", action="store_true", help="then open the browser app on the sample")
    dm.add_argument("--duration", type=_seconds, default=None,
                    help="seconds per recording of the sample (default: long enough for the README's examples)")
    dm.add_argument("-q", "--quiet", action="store_true")
    dm.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (InvalidIdError, UnknownIdError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (SeamlessError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("interrupted; partial downloads are kept and resume on the next run", file=sys.stderr)
        return 130
