"""The README's time-aligned and loader examples find data on the embedded sample (the default build).

The rest of the suite builds the 1 s QUICK_SPEC; this one builds what `mirror build` and `demo` give users.
"""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch", reason="the loader is the optional torch extra")

from seamless_interaction.access.aligned import EmptySpanWarning  # noqa: E402
from seamless_interaction.access.loader import WindowDataset  # noqa: E402
from seamless_interaction.mirror import MirrorServer, MirrorSpec, build_mirror  # noqa: E402


@pytest.mark.slow
def test_readme_examples_return_data_on_the_embedded_sample(tmp_path, make_fs_for):
    info = build_mirror(tmp_path / "mirror", MirrorSpec())
    pair = next(p for p in info.split_pairs if not set(p) & set(info.missing_archive_ids))
    key = pair[0][:19]
    with MirrorServer(info.root) as server, make_fs_for(server, tmp_path / "data") as fs:
        fs.download_batch_from_s3(list(pair))
        with warnings.catch_warnings():
            warnings.simplefilter("error", EmptySpanWarning)
            w = fs.open_interaction(key).window(10.0, 14.0, modalities=("audio", "features", "vad", "words"))
            assert all(len(part["audio"]) == 4 * 48_000 for part in w["participants"])
            assert all(len(part["features"]["smplh:global_orient"]) > 100 for part in w["participants"])
        # The README's loader example: the first archive of improvised/dev, 4 s windows.
        tar = info.root / "hub" / "improvised" / "dev" / "0000" / "0000.tar"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            items = list(WindowDataset([str(tar)], modalities=("features", "audio"), window_s=4.0, dyadic=True,
                                       catalog=fs.catalog))
    assert not [w for w in caught if "shorter than window_s" in str(w.message)]
    assert items and all(it["end_s"] - it["start_s"] == 4.0 for it in items)


@pytest.fixture
def make_fs_for():
    from seamless_interaction.base.config import DatasetConfig
    from seamless_interaction.fs import SeamlessInteractionFS

    def make(server: MirrorServer, local_dir):
        cfg = DatasetConfig(local_dir=local_dir, cdn_url=server.cdn_url, hf_url=server.hf_url,
                            assets=server.assets_url, cache_dir=local_dir.parent / "cache")
        return SeamlessInteractionFS(cfg, quiet=True)

    return make
