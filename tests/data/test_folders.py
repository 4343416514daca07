import os

from mr2ct.data.folders import link_subjects


def test_link_subjects_links_and_keeps_existing(tmp_path):
    (tmp_path / "src").mkdir()
    for name in ("a", "b"):
        (tmp_path / "src" / f"{name}.nii.gz").write_bytes(name.encode())
    link_subjects(tmp_path / "src", tmp_path / "dst", ["a"])
    link_subjects(tmp_path / "src", tmp_path / "dst", ["a", "b"])
    assert sorted(os.listdir(tmp_path / "dst")) == ["a.nii.gz", "b.nii.gz"]
    assert (tmp_path / "dst" / "b.nii.gz").read_bytes() == b"b"
