from pathlib import Path

import pytest

from seamless_interaction.base.config import DatasetConfig
from seamless_interaction.constants import DEFAULT_ASSETS_URL, DEFAULT_CDN_URL, DEFAULT_HF_URL


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("SEAMLESS_INTERACTION_CDN_URL", "SEAMLESS_INTERACTION_HF_URL", "SEAMLESS_INTERACTION_ASSETS",
                "SEAMLESS_INTERACTION_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return monkeypatch


def test_real_endpoints_are_the_defaults(clean_env):
    cfg = DatasetConfig().resolved()
    assert (cfg.cdn_url, cfg.hf_url, cfg.assets) == (DEFAULT_CDN_URL, DEFAULT_HF_URL, DEFAULT_ASSETS_URL)
    assert cfg.hf_token is None and cfg.num_workers >= 1
    assert Path(cfg.local_dir) == Path.home() / "datasets" / "seamless_interaction"


def test_env_overrides_and_field_wins(clean_env):
    clean_env.setenv("SEAMLESS_INTERACTION_CDN_URL", "http://127.0.0.1:1/cdn/")
    clean_env.setenv("SEAMLESS_INTERACTION_HF_URL", "http://127.0.0.1:1/hf")
    clean_env.setenv("SEAMLESS_INTERACTION_ASSETS", "/tmp/tables")
    cfg = DatasetConfig().resolved()
    assert (cfg.cdn_url, cfg.hf_url, cfg.assets) == ("http://127.0.0.1:1/cdn", "http://127.0.0.1:1/hf", "/tmp/tables")
    assert DatasetConfig(cdn_url="http://127.0.0.1:2/x").resolved().cdn_url == "http://127.0.0.1:2/x"


def test_hf_token_from_env_or_login_file(clean_env, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "token").write_text("hf_saved\n")
    assert DatasetConfig().resolved().hf_token == "hf_saved"
    clean_env.setenv("HF_TOKEN", "hf_env")
    assert DatasetConfig().resolved().hf_token == "hf_env"


@pytest.mark.parametrize("kw", [{"label": "improvized"}, {"split": "validation"}, {"num_workers": 0}])
def test_bad_config_names_the_value(kw):
    with pytest.raises(ValueError, match=repr(next(iter(kw.values())))):
        DatasetConfig(**kw)
