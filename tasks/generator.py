"""Feed-forward generators: the multi-scale one of Ulyanov et al. 2016 (Texture Networks) and a
residual one (``arch: residual``, below).

K noise tensors at scales 1, 1/2, ..., 1/2^(K-1) of the output. Each scale runs a conv block
(3x3, 3x3, 1x1, each with normalization and LeakyReLU); the coarser result is upsampled, both
are normalized and concatenated, and a join block mixes them; a final 1x1 conv makes RGB. With
``content_channels`` the content image, downsampled to each scale, is concatenated with the noise
(the stylization variant).

Departure from the paper: circular padding by default. Zero padding lets the generator tell where
the image border is and paint fixed patterns there; circular padding removes that cue and makes
every output tileable. ``padding: zeros | reflect | circular`` is kept for comparison.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

PADDINGS = {"zeros": "zeros", "zero": "zeros", "reflect": "reflect", "circular": "circular"}


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', not {kind!r}")


def _block(in_channels: int, out_channels: int, padding: str, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for kernel, c_in in ((3, in_channels), (3, out_channels), (1, out_channels)):
        layers += [nn.Conv2d(c_in, out_channels, kernel, padding=kernel // 2, padding_mode=padding),
                   _norm(norm, out_channels), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers)


class TextureGenerator(nn.Module):
    def __init__(self, scales: int = 5, channels: int = 8, noise_channels: int = 3, padding: str = "circular",
                 norm: str = "batch", content_channels: int = 0) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {sorted(PADDINGS)}, not {padding!r}")
        self.config = dict(scales=scales, channels=channels, noise_channels=noise_channels,
                           padding=PADDINGS[padding], norm=norm, content_channels=content_channels)
        padding = PADDINGS[padding]
        inputs = noise_channels + content_channels
        self.branches = nn.ModuleList([_block(inputs, channels, padding, norm) for _ in range(scales)])
        # Join k mixes the upsampled coarser path (k * channels) with this scale's branch (channels).
        self.join_norms = nn.ModuleList([_norm(norm, channels * (k + 1)) for k in range(1, scales)])
        self.joins = nn.ModuleList([_block(channels * (k + 1), channels * (k + 1), padding, norm)
                                    for k in range(1, scales)])
        self.to_rgb = nn.Conv2d(channels * scales, 3, kernel_size=1)

    @property
    def multiple(self) -> int:
        """Output sides must be multiples of this (the coarsest scale halves K-1 times)."""
        return 2 ** (self.config["scales"] - 1)

    def noise(self, batch: int, size: tuple[int, int], seed: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """Seeded noise for every scale, finest first; drawn on the CPU so a seed means the same on any device."""
        h, w = size
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"size {w}x{h} must be a multiple of {self.multiple} for {self.config['scales']} scales")
        generator = torch.Generator().manual_seed(seed)
        return [torch.rand(batch, self.config["noise_channels"], h >> k, w >> k, generator=generator).to(device)
                for k in range(self.config["scales"])]

    def forward(self, noise: Sequence[torch.Tensor], content: Optional[torch.Tensor] = None) -> torch.Tensor:
        """RGB in [0, 1] from ``noise`` (finest first) and, for a stylizer, a content batch."""
        inputs = list(noise)
        if self.config["content_channels"]:
            if content is None:
                raise ValueError("this generator is a stylizer: give it a content image")
            inputs = [torch.cat([z, F.interpolate(content, size=z.shape[-2:], mode="bilinear", align_corners=False,
                                                  antialias=True)], dim=1) for z in inputs]
        out = self.branches[-1](inputs[-1])
        for k in range(len(inputs) - 2, -1, -1):
            join = len(inputs) - 2 - k  # 0 for the first join, at the second-coarsest scale
            up = F.interpolate(out, scale_factor=2, mode="nearest")
            out = self.joins[join](self.join_norms[join](torch.cat([up, self.branches[k](inputs[k])], dim=1)))
        return torch.sigmoid(self.to_rgb(out))


class _Residual(nn.Module):
    def __init__(self, channels: int, padding: str, norm: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding), _norm(norm, channels), nn.ReLU(True),
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode=padding), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualGenerator(nn.Module):
    """Johnson et al. 2016's image-transformation family (the "improved texture networks" of Ulyanov et
    al. 2017 use it): two strided convolutions down to 1/4 resolution, residual blocks there, two
    upsampling convolutions back. Slimmed for one-pass speed: 3x3 convolutions throughout and widths
    ``width``, 2x, 4x (Johnson: 9x9 ends, 32-64-128, 5 blocks: about 64 GFLOP at 512 px). Most of the
    work runs at 1/4 resolution with many channels, which a CPU or GPU does far faster per FLOP than the
    multi-scale generator's full-resolution layers of 8 channels. One noise input at full resolution
    (with the content image for a stylizer); circular padding by default, as for the multi-scale one."""

    def __init__(self, width: int = 12, blocks: int = 3, noise_channels: int = 3, padding: str = "circular",
                 norm: str = "instance", content_channels: int = 0) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {sorted(PADDINGS)}, not {padding!r}")
        padding = PADDINGS[padding]
        self.config = dict(arch="residual", width=width, blocks=blocks, noise_channels=noise_channels,
                           padding=padding, norm=norm, content_channels=content_channels)

        def conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, padding_mode=padding), _norm(norm, c_out),
                    nn.ReLU(True)]

        w = width
        self.down = nn.Sequential(*conv(noise_channels + content_channels, w), *conv(w, 2 * w, 2), *conv(2 * w, 4 * w, 2))
        self.blocks = nn.Sequential(*[_Residual(4 * w, padding, norm) for _ in range(blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), *conv(4 * w, 2 * w),
                                nn.Upsample(scale_factor=2, mode="nearest"), *conv(2 * w, w))
        self.to_rgb = nn.Conv2d(w, 3, 3, padding=1, padding_mode=padding)

    multiple = 4  # two stride-2 steps

    def noise(self, batch: int, size: tuple[int, int], seed: int, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        h, w = size
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"size {w}x{h} must be a multiple of {self.multiple} for this generator")
        generator = torch.Generator().manual_seed(seed)
        return [torch.rand(batch, self.config["noise_channels"], h, w, generator=generator).to(device)]

    def forward(self, noise: Sequence[torch.Tensor], content: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = noise[0]
        if self.config["content_channels"]:
            if content is None:
                raise ValueError("this generator is a stylizer: give it a content image")
            x = torch.cat([x, F.interpolate(content, size=x.shape[-2:], mode="bilinear", align_corners=False,
                                            antialias=True)], dim=1)
        return torch.sigmoid(self.to_rgb(self.up(self.blocks(self.down(x)))))


ARCHS = ("multiscale", "residual")


def build_generator(arch: str, *, scales: int, channels: int, width: int, blocks: int, padding: str, norm: str,
                    content_channels: int = 0) -> nn.Module:
    if arch == "multiscale":
        return TextureGenerator(scales, channels, padding=padding, norm=norm, content_channels=content_channels)
    if arch == "residual":
        return ResidualGenerator(width, blocks, padding=padding, norm=norm, content_channels=content_channels)
    raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {arch!r}")


def save_generator(model: TextureGenerator) -> bytes:
    """safetensors bytes with the architecture in the metadata, so the file alone rebuilds the model."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return save(state, metadata={"texfarm": json.dumps(model.config)})


def load_generator(data: bytes, device: torch.device | str = "cpu") -> TextureGenerator:
    from safetensors.torch import load

    state = load(data)
    config = json.loads(_metadata(data)["texfarm"])
    arch = config.pop("arch", "multiscale")  # files written before the residual one carry no arch
    model = ResidualGenerator(**config) if arch == "residual" else TextureGenerator(**config)
    model.load_state_dict(state)
    return model.to(device).eval()


def _metadata(data: bytes) -> dict[str, str]:
    """The safetensors header's __metadata__ (8-byte little-endian length, then JSON)."""
    length = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + length]).get("__metadata__", {})
