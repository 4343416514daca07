"""Data set folders on disk: grouping subjects' volume files into sub-sets without copying them."""

from __future__ import annotations

import os
import shutil


def link_subjects(src_dir, dst_dir, subjects) -> None:
    """Make ``dst_dir/<subject>.nii.gz`` for each subject, linking to ``src_dir`` (a copy where links fail).

    Splits a phantom data set into groups (unpaired MR and CT training
    subjects, test subjects) without copying volumes; existing entries are kept.
    """
    os.makedirs(dst_dir, exist_ok=True)
    for subject in subjects:
        src = os.path.join(src_dir, f"{subject}.nii.gz")
        dst = os.path.join(dst_dir, f"{subject}.nii.gz")
        if not os.path.lexists(dst):
            try:
                os.symlink(os.path.abspath(src), dst)
            except OSError:
                shutil.copyfile(src, dst)
