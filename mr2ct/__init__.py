"""mr2ct: unpaired MR-to-CT synthesis (CycleGAN + gradient-consistency loss).

Implements Hiasa et al., "Cross-modality image synthesis from unpaired data
using CycleGAN: effects of gradient consistency loss and training data size"
(SASHIMI 2018) in TensorFlow/Keras 3.
"""

__version__ = "0.1.0"
