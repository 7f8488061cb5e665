import re

import pytest

from seamless_interaction.base.errors import InvalidIdError, SeamlessError
from seamless_interaction.base.ids import (
    ArchiveRef, FileId, classify_key, validate_interaction_key, validate_modalities,
)


def test_suffixed_participant_keeps_letter():
    fid = FileId.parse("V00_S0644_I00000125_P0299A")
    assert fid.participant == "0299A"
    assert str(fid) == "V00_S0644_I00000125_P0299A"
    assert fid.interaction_key == "V00_S0644_I00000125"
    assert fid.session_key == "V00_S0644"


@pytest.mark.parametrize("bad", ["", "V0_S0644_I00000125_P0299", "V00_S0644_I0000125_P0299",
                                 "V00_S0644_I00000125_P0299AB", "v00_s0644_i00000125_p0299",
                                 "V00_S0644_I00000125_P0299.mp4", "V00_S0644_I00000125"])
def test_malformed_ids_raise_value_error_naming_input(bad):
    with pytest.raises(ValueError) as err:
        FileId.parse(bad)
    assert isinstance(err.value, InvalidIdError) and isinstance(err.value, SeamlessError)
    assert repr(bad) in str(err.value)


def test_key_one_digit_short_is_rejected_not_prefix_matched():
    with pytest.raises(InvalidIdError):
        validate_interaction_key("V00_S0809_I0000058")


def test_classify():
    assert classify_key("V00_S0809_I00000582_P0947") == "file"
    assert classify_key("V00_S0809_I00000582") == "interaction"
    assert classify_key("V00_S0809") == "session"
    with pytest.raises(InvalidIdError):
        classify_key("S0809")


@pytest.mark.parametrize("args,needle", [
    (("improvised", "../../x", 0, 0), "split '../../x' is not one of"),
    (("../x", "dev", 0, 0), "label '../x'"),
    (("improvised", "dev", -1, 0), "batch -1 is out of range"),
    (("improvised", "dev", 0, 10000), "archive 10000 is out of range"),
    (("improvised", "dev", 1.5, 0), "batch 1.5 is not an integer"),
    (("improvised", "dev", True, 0), "batch True"),
    (("improvised", "dev", "0/..", 0), "batch '0/..'"),
    (("improvised", "dev", None, 0), "batch None"),
])
def test_archive_ref_checks_every_field(args, needle):
    with pytest.raises(InvalidIdError, match=re.escape(needle)):
        ArchiveRef(*args)


def test_archive_ref_normalises_and_unpacks():
    ref = ArchiveRef("improvised", "dev", "3", 4)
    assert (ref.batch, ref.archive) == (3, 4) and tuple(ref) == ("improvised", "dev", 3, 4)
    assert str(ref) == "improvised/dev/0003/0004" == str(ArchiveRef.parse("improvised/dev/3/4"))
    assert ArchiveRef.parse("/improvised/dev/0003/0004/") == ref
    assert sorted([ArchiveRef("naturalistic", "dev", 0, 0), ref])[0] == ref
    with pytest.raises(InvalidIdError):
        ArchiveRef.parse("improvised/dev/3")


def test_modalities():
    assert validate_modalities("npz") == ("npz",)
    assert validate_modalities(["npz", "json", "npz"]) == ("npz", "json")
    for bad in ([], "", ["exe"], None, ["npz", "../x"]):
        with pytest.raises(InvalidIdError):
            validate_modalities(bad)
