"""Part IV, page 2: the landscape along random directions, gradients at initialisation, and a CIFAR-10 ResNet.
"""

from __future__ import annotations

from ..claims import Section
from ..experiments import DLN_LOSS_SCALE, SWEEP_LRS, Spec

RESNET, RESNET_LR = "resnet20", 0.1
#: Runs with the random-direction probe: the sweep's new learning rates nearest the paper's, and the ResNet.
RANDOM = {("vgg", n, lr): Spec("vgg", n, lr) for lr in SWEEP_LRS["vgg"][1:] for n in ("none", "batch")} | {
    ("dln", n, SWEEP_LRS["dln"][0]): Spec("dln", n, SWEEP_LRS["dln"][0], DLN_LOSS_SCALE) for n in ("none", "batch")}
RESNETS = {n: Spec(RESNET, n, RESNET_LR) for n in ("none", "batch")}
SPECS = tuple(RANDOM.values()) + tuple(RESNETS.values())

SECTION = Section("IV.2", "Beyond the paper: random directions, initial gradients, a ResNet", "chapters/beyond_more",
                  SPECS, (), variants=False)
