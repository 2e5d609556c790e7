"""Part IV, page 1: does BatchNorm's "effective beta" just track 2/LR? Sharpness, learning-rate robustness and
scale invariance, on a learning-rate sweep of VGG and the deep linear network, standard and BatchNorm.
"""

from __future__ import annotations

from ..claims import Section
from ..experiments import DLN_LOSS_SCALE, SWEEP_LRS, Spec

#: The sweep: the paper's learning rates (whose runs the other chapters already have) plus `SWEEP_LRS`.
LRS = {"vgg": tuple(sorted((0.01, 0.1, 0.5) + SWEEP_LRS["vgg"])), "dln": tuple(sorted((1e-7, 1e-6) + SWEEP_LRS["dln"]))}
NORMS = ("none", "batch")
SPECS = {(m, n, lr): Spec(m, n, lr, DLN_LOSS_SCALE if m == "dln" else 1.0) for m in LRS for lr in LRS[m]
         for n in NORMS}

SECTION = Section("IV.1", "Beyond the paper: does effective beta track 2/LR?", "chapters/beyond_lr",
                  tuple(SPECS.values()), (), variants=False)
