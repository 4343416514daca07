"""What a checkpoint holds: Keras 3 variables keyed by stable names.

``tf.train.Checkpoint`` does not see Keras 3 layers kept in Python lists (the
networks keep their stages in lists), nor an optimizer's slot variables, so a
checkpoint of the bare objects would silently miss most weights. Checkpoints
therefore hold explicit dictionaries of variables:

* a model's variables keyed by their Keras path (``generator_mr_to_ct/
  block0/conv1/kernel``), which is stable because every layer is named;
* an optimizer's variables keyed by their path below the optimizer's own
  name (``iteration``, ``generator_mr_to_ct_stem_conv_kernel_momentum``).
"""

from __future__ import annotations

import keras


def variable_map(obj) -> dict:
    """``{stable name: variable}`` for a Keras model, layer or optimizer."""
    if isinstance(obj, keras.optimizers.Optimizer):
        items = [(v.path.split("/", 1)[-1], v) for v in obj.variables]
    else:
        items = [(v.path, v) for v in obj.weights]
    out = {}
    for key, variable in items:
        if key in out:
            raise ValueError(
                f"two variables share the checkpoint name {key!r}; give the layers unique names"
            )
        out[key] = variable
    return out


def checkpoint_items(**objects) -> dict:
    """Keyword arguments for ``tf.train.Checkpoint``: Keras objects become variable maps."""
    return {
        name: variable_map(obj) if isinstance(obj, (keras.Layer, keras.optimizers.Optimizer)) else obj
        for name, obj in objects.items()
    }
