"""The three networks of the paper's §3.1: encoder q(z|x,y), prior encoder p(z|y), decoder
p(x|z,y)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import NUM_DOWNSAMPLINGS, check_image_size


OUTPUT_BIAS = 0.5  # mid-grey, the middle of [0, 1]; training starts at the data's mean instead


def _channels(base_channels: int) -> list:
    return [base_channels * 2**i for i in range(NUM_DOWNSAMPLINGS)]


class Encoder(nn.Module):
    """q(z|x,y): the labels enter as A constant image channels; returns (mu, log_sigma).

    ``sees_labels=False`` gives q(z|x), the encoder of the paper's non-flow models (its Fig. 1,
    middle, and App. A): the image alone, y never enters.
    """

    def __init__(self, image_size: int, num_attributes: int, latent_dim: int,
                 base_channels: int = 32, sees_labels: bool = True):
        super().__init__()
        side = check_image_size(image_size) // 2**NUM_DOWNSAMPLINGS
        self.sees_labels = sees_labels
        layers, in_channels = [], 3 + (num_attributes if sees_labels else 0)
        for out_channels in _channels(base_channels):
            layers += [nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1),
                       nn.LeakyReLU(0.2)]
            in_channels = out_channels
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(in_channels * side * side, 2 * latent_dim)

    def forward(self, x: Tensor, y: Tensor):
        if self.sees_labels:
            label_maps = y[:, :, None, None].expand(-1, -1, *x.shape[2:]).to(x.dtype)
            x = torch.cat([x, label_maps], 1)
        h = self.convs(x)
        mu, log_sigma = self.head(h).chunk(2, dim=1)
        return mu, log_sigma


class PriorEncoder(nn.Module):
    """p(z|y) base Gaussian: two Conv1d over the attribute vector, then a Linear."""

    def __init__(self, num_attributes: int, latent_dim: int, channels: int = 16):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv1d(1, channels, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv1d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten())
        self.head = nn.Linear(channels * num_attributes, 2 * latent_dim)
        nn.init.zeros_(self.head.weight)  # start at N(0, I), the unconditional prior
        nn.init.zeros_(self.head.bias)

    def forward(self, y: Tensor):
        mu, log_sigma = self.head(self.convs(y.unsqueeze(1))).chunk(2, dim=1)
        return mu, log_sigma


class Decoder(nn.Module):
    """p(x|z,y): a Linear from [z, y], four stride-2 transposed convolutions, unbounded means.

    The last layer is linear (no sigmoid): the Gaussian likelihood of every model is a density
    on the real line, and a sigmoid in front of a squared error has a gradient that vanishes
    where it saturates, which on a uniform background collapses the decoder to a blank image
    (chapter 2). Means leave [0, 1] a little; images are clamped only where they are shown or
    quantised (``data.to_uint8``).
    """

    def __init__(self, image_size: int, num_attributes: int, latent_dim: int,
                 base_channels: int = 32):
        super().__init__()
        self.side = check_image_size(image_size) // 2**NUM_DOWNSAMPLINGS
        channels = _channels(base_channels)[::-1]
        self.channels = channels[0]
        self.head = nn.Sequential(
            nn.Linear(latent_dim + num_attributes, channels[0] * self.side**2), nn.LeakyReLU(0.2))
        layers = []
        for in_channels, out_channels in zip(channels, channels[1:] + [3]):
            layers += [nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
                       nn.LeakyReLU(0.2)]
        del layers[-1]  # identity means
        nn.init.constant_(layers[-1].bias, OUTPUT_BIAS)
        self.deconvs = nn.Sequential(*layers)

    @torch.no_grad()
    def start_at(self, channel_means: Tensor) -> None:
        """Set the output bias to the data's mean per channel: the decoder starts at the mean
        colour instead of spending its first steps getting there (``training.train``)."""
        self.deconvs[-1].bias.copy_(channel_means)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        h = self.head(torch.cat([z, y.to(z.dtype)], 1))
        return self.deconvs(h.view(-1, self.channels, self.side, self.side))
