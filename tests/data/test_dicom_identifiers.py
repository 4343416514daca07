"""Identifiers a derived DICOM series keeps from its source."""

import numpy as np
import pytest

from mr2ct.data.dicom import IDENTIFIER_TAGS, read_identifiers, write_dicom_series
from mr2ct.data.volume import Volume
from mr2ct.errors import InputError


def volume():
    return Volume(np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5), spacing=(1.0, 1.5, 2.0))


def test_identifiers_are_read_back_from_a_folder_and_from_one_file(tmp_path):
    given = {"0010|0010": "DOE^JOHN", "0010|0020": "ID-1", "0020|000d": "1.2.3.4", "0020|0052": "1.2.3.5"}
    files = write_dicom_series(volume(), tmp_path / "s", modality="MR", identifiers=given)
    for path in (tmp_path / "s", files[1]):
        found = read_identifiers(path)
        assert {k: found[k] for k in given} == given
        assert set(found) <= set(IDENTIFIER_TAGS)


def test_only_identifier_tags_are_taken_and_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="identifiers may hold only the tags"):
        write_dicom_series(volume(), tmp_path / "s", identifiers={"0020|000e": "1.2.3"})  # a series UID: always new
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no DICOM series") as raised:
        read_identifiers(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(raised.value)
    (tmp_path / "junk.dcm").write_bytes(b"not dicom" * 10)
    with pytest.raises(InputError, match="cannot be read as DICOM"):
        read_identifiers(tmp_path / "junk.dcm")
