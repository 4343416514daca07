import numpy as np

from mr2ct import labels


def test_label_table():
    assert sorted(labels.LABELS) == list(range(labels.NUM_CLASSES))
    assert labels.NUM_CLASSES == 23 and labels.LABELS[0] == "background"
    assert len(set(labels.LABELS.values())) == labels.NUM_CLASSES
    assert len(labels.MUSCLES) == 19 and set(labels.BONES) == {labels.PELVIS, labels.FEMUR, labels.SACRUM}
    names = [labels.LABELS[v] for v in labels.EVALUATED_STRUCTURES]
    assert names == ["pelvis", "femur", "gluteus_medius", "gluteus_minimus"]
    assert all(labels.LABELS[labels.LABEL_VALUES[name]] == name for name in labels.LABELS.values())


def test_label_colours():
    colours = labels.label_colours()
    assert colours.shape == (labels.NUM_CLASSES, 4)
    assert colours[0, 3] == 0 and np.all(colours[1:, 3] == 1)
    assert len({tuple(c) for c in colours[1:]}) == labels.NUM_CLASSES - 1
