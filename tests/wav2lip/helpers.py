"""Helpers of the Wav2Lip tests: a generator with random weights and the test face box."""

from __future__ import annotations

import torch

from avatar_engine.renderers.wav2lip import Wav2LipNet

FACE_BOX = (40, 30, 64, 72)  # x, y, w, h inside the 160x128 picture


def random_net(seed: int = 0) -> Wav2LipNet:
    """A generator with random weights scaled so the audio reaches the output (torch's default
    init shrinks the signal through the 13 audio layers to nothing), and batch-norm statistics
    that are not the identity."""
    torch.manual_seed(seed)
    net = Wav2LipNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.weight.mul_(0.7)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.05, 0.05)
                m.running_var.uniform_(0.8, 1.25)
    return net.eval()
