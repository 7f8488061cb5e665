import pytest

from seamless_interaction.base.errors import InvalidIdError, SeamlessError
from seamless_interaction.base.ids import FileId, classify_key, validate_interaction_key


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
