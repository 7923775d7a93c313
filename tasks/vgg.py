"""VGG19 feature extractor with named layers, built on torchvision's ``vgg19``.

One forward pass returns every requested activation, so all losses of a task share it.
Departures from the plain torchvision network:
- ReLUs are not in-place (an in-place ReLU would overwrite the conv activations we return);
- max pooling can be swapped for average pooling (Gatys et al. 2015 do this for synthesis;
  with random weights it matters much more: random features synthesize far better with avg);
- convolutions can switch to circular padding for tileable output (``padding_mode``).
"""
from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import torch
from torch import nn
from torchvision.models import VGG19_Weights, vgg19

from .model import LAYERS, layer_names, weights_id  # noqa: F401  (re-exported)

T = TypeVar("T")

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


_INDEX = {name: i for i, name in enumerate(LAYERS)}


class WeightsUnavailable(RuntimeError):
    """The requested weights cannot be loaded (no download, missing file, bad format)."""


def _check_layers(layers: Sequence[str]) -> None:
    unknown = [name for name in layers if name not in _INDEX]
    if unknown:
        raise ValueError(f"unknown VGG19 layer(s) {unknown}; valid names are {LAYERS}")


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a VGG19 state dict from a local ``.safetensors`` or ``.pth`` file, never unpickling code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsUnavailable(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files
        raise WeightsUnavailable(f"cannot read weights file {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{path} holds a {type(state).__name__}, expected a state dict")
    return state


def _imagenet_vgg() -> nn.Module:
    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    except Exception as exc:  # URLError, SSL errors, hash mismatch of a broken download
        raise WeightsUnavailable(
            "could not download the ImageNet VGG19 weights "
            f"({VGG19_Weights.IMAGENET1K_V1.url}): {exc}. Use `weights: random` to run offline, "
            "or stage the weights once and give `weights: /path/vgg19.pth` or `weights: s3://bucket/vgg19.pth`."
        ) from exc


def build_vgg19(weights: str = "random", seed: int = 0) -> nn.Module:
    """Return torchvision's VGG19 with ``weights`` = ``imagenet``, ``random`` or a local file path."""
    if weights == "imagenet":
        return _imagenet_vgg()
    if weights == "random":
        # Seed a private RNG stream so the network does not depend on (or disturb) global state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return vgg19(weights=None)
    model = vgg19(weights=None)
    state = load_state_dict(weights)
    # Accept a full VGG19 state dict or only its ``features`` part.
    if not any(key.startswith("features.") for key in state):
        state = {f"features.{key}": value for key, value in state.items()}
    missing, _unexpected = model.load_state_dict(state, strict=False)
    missing_features = [key for key in missing if key.startswith("features.")]
    if missing_features:
        raise WeightsUnavailable(f"{weights} is not a VGG19 state dict: missing {missing_features[:4]}")
    return model


class VGGFeatures(nn.Module):
    """Frozen VGG19 ``features`` truncated after ``last_layer``; ``forward`` returns named activations."""

    def __init__(
        self,
        weights: str = "random",
        pooling: str = "avg",
        seed: int = 0,
        last_layer: str = "relu5_1",
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {precision!r}")
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = compile
        if pooling not in ("avg", "max"):
            raise ValueError(f"pooling must be 'avg' or 'max', not {pooling!r}")
        _check_layers([last_layer])
        features = build_vgg19(weights, seed).features[: _INDEX[last_layer] + 1]
        modules = []
        for module in features:
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            modules.append(module)
        self.layers = nn.Sequential(*modules)
        self.names = LAYERS[: len(modules)]
        self.weights = weights
        self.pooling = pooling
        self.id = weights_id(weights, seed, pooling, precision)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()
        self.to(device)
        if channels_last:
            self.layers.to(memory_format=torch.channels_last)
        # Static shapes: a run renders a few sizes, each worth its own specialized kernels; past
        # dynamo's recompile limit a new size falls back to eager.
        self._activations = torch.compile(self._eager_activations, dynamic=False) if compile else self._eager_activations
        # Exemplar-derived targets (Gram matrices, patches) keyed by content: several seeds of one
        # exemplar, run one after another on this network, compute them once.
        self._cache: OrderedDict[tuple, object] = OrderedDict()

    def cached(self, key: tuple, make: Callable[[], T]) -> T:
        """``make()`` memoized under ``key`` (least recently used of 32 entries dropped)."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        value = self._cache[key] = make()
        while len(self._cache) > 32:
            self._cache.popitem(last=False)
        return value

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @contextlib.contextmanager
    def padding(self, mode: str) -> Iterator[None]:
        """Temporarily set every conv's padding mode ('zeros' or 'circular' for tileable output)."""
        convs = [m for m in self.layers if isinstance(m, nn.Conv2d)]
        previous = [conv.padding_mode for conv in convs]
        for conv in convs:
            conv.padding_mode = mode
        try:
            yield
        finally:
            for conv, mode_before in zip(convs, previous):
                conv.padding_mode = mode_before

    def forward(self, image: torch.Tensor, layers: Sequence[str],
                at_tap: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for an RGB batch in [0, 1]; stops after the deepest one. ``at_tap(name,
        activation)``, e.g. a Gram matrix, is applied as each layer is reached and its result returned
        instead: autograd then runs its backward when the backward pass reaches that layer, rather than all
        of them first with every tap's full-size gradient held meanwhile (the peak memory of an evaluation)."""
        _check_layers(layers)
        wanted = set(layers)
        deepest = max(_INDEX[name] for name in wanted)
        if deepest >= len(self.names):
            raise ValueError(f"layer {LAYERS[deepest]} is past this extractor's last layer {self.names[-1]}")
        names = tuple(name for name in self.names[: deepest + 1] if name in wanted)
        if at_tap is None:
            return self._activations(image, deepest, names)
        if self.compiled:  # a callable inside the compiled graph would recompile per closure
            return {name: at_tap(name, value) for name, value in self._activations(image, deepest, names).items()}
        return self._eager_activations(image, deepest, names, at_tap)

    def _eager_activations(self, image: torch.Tensor, deepest: int, names: tuple[str, ...],
                           at_tap: Optional[Callable[[str, torch.Tensor], torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        x = (image - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        # The network may run in reduced precision; the activations handed to the losses are fp32.
        with torch.autocast(self.device.type, dtype=PRECISIONS[self.precision], enabled=self.precision != "fp32"):
            for index, module in enumerate(self.layers[: deepest + 1]):
                # ReLU in place (its backward needs only its output, a conv's only its input): no second
                # full-size tensor while it runs. Not after a tapped conv: that activation is handed out.
                if isinstance(module, nn.ReLU) and self.names[index - 1] not in names:
                    x = torch.relu_(x)
                else:
                    x = module(x)
                if self.names[index] in names:
                    if at_tap is None:
                        out[self.names[index]] = x
                    else:  # in fp32, outside autocast, like any loss computed on the returned activations
                        with torch.autocast(self.device.type, enabled=False):
                            out[self.names[index]] = at_tap(self.names[index], x.float())
        return {name: value.float() for name, value in out.items()}
