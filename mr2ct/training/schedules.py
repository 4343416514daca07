"""Learning-rate schedules."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mr2ct")
class ConstantThenLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant learning rate, then a straight line down to zero.

    ``lr(step) = initial`` for ``step < constant_steps``, then
    ``initial * (1 - (step - constant_steps) / decay_steps)``, reaching 0 at
    ``constant_steps + decay_steps`` and staying there.

    Args:
        initial_learning_rate: the constant rate. Defaults to `2e-4`.
        constant_steps: steps at the constant rate. Defaults to `100000`.
        decay_steps: steps of the linear decay. Defaults to `100000`.

    Reference:
        Hiasa et al. 2018, section 2.2 (1e5 constant and 1e5 decaying iterations).
    """

    def __init__(self, initial_learning_rate=2e-4, constant_steps=100_000, decay_steps=100_000):
        if initial_learning_rate <= 0:
            raise ValueError(
                f"initial_learning_rate must be positive. Received: {initial_learning_rate}"
            )
        if constant_steps < 0 or decay_steps < 0:
            raise ValueError(
                f"steps must be non-negative. Received: constant_steps={constant_steps}, "
                f"decay_steps={decay_steps}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.constant_steps = int(constant_steps)
        self.decay_steps = int(decay_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        past = ops.maximum(step - self.constant_steps, 0.0)
        fraction = ops.clip(1.0 - past / max(self.decay_steps, 1), 0.0, 1.0)
        if self.decay_steps == 0:
            fraction = ops.where(step < self.constant_steps, 1.0, 0.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "constant_steps": self.constant_steps,
            "decay_steps": self.decay_steps,
        }
