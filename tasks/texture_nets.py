"""Texture Networks (Ulyanov et al. 2016): train a feed-forward generator with the Gram loss, then
render textures or stylize images in one forward pass.

Training is resumable and deterministic: step s draws its noise (and content batch) from a seed
derived from (seed, s), the learning rate is a function of s, and checkpoints hold the weights and
the optimizer state; so a run resumed from step s ends bit-identical to an uninterrupted one (on
the same device).
"""
from __future__ import annotations

import hashlib
import io
import time
from collections import OrderedDict
from typing import Optional, Sequence

import torch

from .checkpoint import CheckpointStore
from .common import TaskOutput
from .generator import TextureGenerator, build_generator, load_generator, save_generator
from .imageio import encode_png
from .imageops import resize, scale_by, scale_to_long_side
from .losses import ContentLoss, GramLoss, diversity_loss, normalized_weights
from .params import parse_size
from .kinds.generate import GenerateParams
from .kinds.stylize import StylizeParams
from .kinds.train_stylizer import StylizerParams
from .kinds.train_texture_net import TextureNetParams
from .vgg import VGGFeatures

GENERATOR_FILE = "generator.safetensors"
STATE_FILE = "state.pt"
SAMPLE_FILE = "sample.png"


def _step_seed(seed: int, step: int) -> int:
    return seed * 1_000_003 + step


def _grid(images: torch.Tensor) -> torch.Tensor:
    """A row of images side by side, (1, 3, H, B*W)."""
    return torch.cat(list(images.detach().cpu()), dim=-1).unsqueeze(0)


def _center_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    h, w = size
    scale = max(h / image.shape[-2], w / image.shape[-1])
    image = scale_by(image, scale)
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[..., top : top + h, left : left + w]


class _Trainer:
    def __init__(self, model: TextureGenerator, params: TextureNetParams, seed: int, store: Optional[CheckpointStore],
                 device: torch.device) -> None:
        self.model, self.params, self.seed, self.store, self.device = model, params, seed, store, device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=params.lr)
        self.step, self.history = 0, []
        if store is not None and (found := store.latest()) is not None:
            step, files = found
            model.load_state_dict(load_generator(files[GENERATOR_FILE]).state_dict())
            state = torch.load(io.BytesIO(files[STATE_FILE]), map_location=device, weights_only=True)
            self.optimizer.load_state_dict(state["optimizer"])
            self.step, self.history = step, list(state["history"])
        self.resumed_from = self.step

    def lr(self, step: int) -> float:
        return self.params.lr * self.params.lr_decay ** (step // self.params.lr_decay_every)

    def checkpoint(self, sample: torch.Tensor) -> None:
        if self.store is None:
            return
        buffer = io.BytesIO()
        torch.save({"optimizer": self.optimizer.state_dict(), "history": self.history, "step": self.step}, buffer)
        self.store.save(self.step, {GENERATOR_FILE: save_generator(self.model), STATE_FILE: buffer.getvalue(),
                                    SAMPLE_FILE: encode_png(_grid(sample))})

    def run(self, loss_fn, batch_inputs) -> dict:
        """Adam steps until ``iterations``; ``batch_inputs(step)`` gives (noise, content) for a step."""
        params, clock = self.params, time.perf_counter()
        pending: list[torch.Tensor] = []  # losses stay on the device until a checkpoint: no sync per step
        self.model.train()
        while self.step < params.iterations:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr(self.step)
            noise, content = batch_inputs(self.step)
            self.optimizer.zero_grad(set_to_none=True)
            images = self.model(noise, content)
            loss = loss_fn(images, content)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            pending.append(loss.detach())
            if self.step % params.checkpoint_every == 0 or self.step == params.iterations:
                self.history += torch.stack(pending).cpu().tolist()
                pending.clear()
                self.checkpoint(images[: params.samples])
        steps = self.step - self.resumed_from
        seconds = time.perf_counter() - clock
        return {"steps": steps, "seconds": round(seconds, 4), "steps_per_second": steps / seconds if seconds else None}


def _output(trainer: _Trainer, size: tuple[int, int], seed: int, extra: dict, content: Optional[torch.Tensor] = None) -> TaskOutput:
    model = trainer.model.eval()
    with torch.no_grad():
        noise = model.noise(trainer.params.samples, size, _step_seed(seed, -1), trainer.device)
        batch = content[: 1].expand(trainer.params.samples, -1, -1, -1) if content is not None else None
        sample = model(noise, batch)
    history = trainer.history
    record = {"loss_start": history[0] if history else None, "loss_end": history[-1] if history else None,
              "iterations": trainer.step, "resumed_from": trainer.resumed_from, "device": str(trainer.device),
              "loss_history": history[:: max(1, len(history) // 200)], "generator": dict(model.config), **extra}
    return TaskOutput([_grid(sample)], record, files={".safetensors": save_generator(model)})


def _new_generator(params: TextureNetParams, seed: int, device: torch.device, content_channels: int = 0):
    """A generator whose initial weights depend only on ``seed`` (a private RNG stream)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_generator(params.arch, scales=params.scales, channels=params.channels, width=params.width,
                               blocks=params.blocks, padding=params.padding, norm=params.norm,
                               content_channels=content_channels).to(device)


def train_texture_net(inputs: dict[str, Sequence[torch.Tensor]], params: TextureNetParams, vgg: VGGFeatures,
                      seed: int, checkpoints: Optional[CheckpointStore] = None) -> TaskOutput:
    """Train a generator on the exemplar ``inputs['inputs'][0]``; returns a sample grid and the weights."""
    device = vgg.device
    size = parse_size(params.size)
    model = _new_generator(params, seed, device)
    exemplar = scale_by(inputs["inputs"][0].to(device), params.exemplar_scale, min_side=16)
    # VGG judges the samples and the exemplar with the generator's own padding: a circular generator's
    # samples tile, and judged with zero padding (whose response dominates random weights' deep layers)
    # it learnt black blobs for magenta dots (docs/quality.md, Texture Networks on a sparse texture).
    with torch.no_grad(), vgg.padding(params.padding):
        gram_loss = GramLoss.from_features([vgg(exemplar, params.layers)], normalized_weights(params.layers, params.layer_weights))
    if params.diversity_weight and params.batch_size < 2:
        raise ValueError("diversity_weight needs batch_size >= 2: the term compares the samples of a batch")
    layers = list(dict.fromkeys([*params.layers, params.diversity_layer])) if params.diversity_weight else params.layers

    def loss(images: torch.Tensor, _) -> torch.Tensor:
        features = vgg(images, layers)
        total = gram_loss.per_image(features).mean()
        if params.diversity_weight:
            total = total + params.diversity_weight * diversity_loss(features[params.diversity_layer])
        return total

    trainer = _Trainer(model, params, seed, checkpoints, device)
    with vgg.padding(params.padding):
        stats = trainer.run(loss, lambda step: (model.noise(params.batch_size, size, _step_seed(seed, step), device), None))
    return _output(trainer, size, seed, stats)


def train_stylizer(inputs: dict[str, Sequence[torch.Tensor]], params: StylizerParams, vgg: VGGFeatures,
                   seed: int, checkpoints: Optional[CheckpointStore] = None) -> TaskOutput:
    """Train a stylizer for the style ``inputs['style'][0]`` over the content set ``inputs['content']``."""
    device = vgg.device
    size = parse_size(params.size)
    model = _new_generator(params, seed, device, content_channels=3)
    style = scale_to_long_side(inputs["style"][0].to(device), max(16, round(params.style_scale * max(size))))
    contents = torch.cat([_center_crop(c, size) for c in inputs["content"]]).to(device)
    weights = normalized_weights(params.style_layers, params.style_layer_weights)
    layers = list(dict.fromkeys([*params.style_layers, params.content_layer]))
    with torch.no_grad():
        gram_loss = GramLoss.from_features([vgg(style, params.style_layers)], weights)

    def batch(step: int):
        generator = torch.Generator().manual_seed(_step_seed(seed, step))
        picks = torch.randint(len(contents), (params.batch_size,), generator=generator)
        return model.noise(params.batch_size, size, _step_seed(seed, step), device), contents[picks.to(device)]

    def loss_fn(images: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        feats = vgg(images, layers)
        with torch.no_grad():
            target = vgg(content, [params.content_layer])[params.content_layer]
        content_loss = ContentLoss(params.content_layer, target)(feats)
        return params.content_weight * content_loss + params.style_weight * gram_loss.per_image(feats).mean()

    trainer = _Trainer(model, params, seed, checkpoints, device)
    stats = trainer.run(loss_fn, batch)
    return _output(trainer, size, seed, stats, content=contents)


def _round_to(value: int, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _device(vgg: Optional[VGGFeatures], device: Optional[torch.device]) -> torch.device:
    return device or (vgg.device if vgg is not None else torch.device("cpu"))


_LOADED: "OrderedDict[tuple[str, str], torch.nn.Module]" = OrderedDict()
LOADED_GENERATORS = 4  # per process (an actor): the tasks of one generator rebuild it once, not per task


def _generator(data: bytes, device: torch.device) -> torch.nn.Module:
    """The generator in ``data`` on ``device``, kept for the next task of the same file (a stylize job over a
    folder of photos used to rebuild it for every photo)."""
    key = (hashlib.sha1(data).hexdigest(), str(device))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    model = load_generator(data, device)
    _LOADED[key] = model
    while len(_LOADED) > LOADED_GENERATORS:
        _LOADED.popitem(last=False)
    return model


def generate(inputs: dict[str, Sequence[bytes]], params: GenerateParams, vgg: Optional[VGGFeatures],
             seed: int, device: Optional[torch.device] = None) -> TaskOutput:
    """``params.count`` textures of ``params.size`` from a trained generator, in batches (no VGG needed)."""
    clock = time.perf_counter()
    device = _device(vgg, device)
    model = _generator(inputs["generator"][0], device)
    h, w = parse_size(params.size)
    if h % model.multiple or w % model.multiple:
        raise ValueError(f"size {w}x{h} must be a multiple of {model.multiple} for this generator; "
                         f"try {_round_to(w, model.multiple)}x{_round_to(h, model.multiple)}")
    seeds = [seed * params.count + i for i in range(params.count)]
    images = []
    with torch.no_grad():
        for start in range(0, len(seeds), params.batch_size):
            chunk = seeds[start : start + params.batch_size]
            noise = [torch.cat(z) for z in zip(*(model.noise(1, (h, w), s, device) for s in chunk))]
            images += [image.unsqueeze(0).cpu() for image in model(noise)]
    seconds = time.perf_counter() - clock
    return TaskOutput(images, {"seeds": seeds, "seconds": round(seconds, 4), "images_per_second": len(seeds) / seconds,
                               "device": str(device), "size": [w, h], "loss_start": None, "loss_end": None})


def stylize(inputs: dict[str, Sequence], params: StylizeParams, vgg: Optional[VGGFeatures], seed: int,
            device: Optional[torch.device] = None) -> TaskOutput:
    """Stylize ``inputs['content'][0]`` with the trained stylizer ``inputs['generator'][0]`` in one pass."""
    clock = time.perf_counter()
    device = _device(vgg, device)
    model = _generator(inputs["generator"][0], device)
    if not model.config["content_channels"]:
        raise ValueError("this generator was trained by train_texture_net; stylize needs a train_stylizer generator")
    content = inputs["content"][0].to(device)
    h, w = parse_size(params.size, aspect_from=tuple(content.shape[-2:]))
    h, w = _round_to(h, model.multiple), _round_to(w, model.multiple)
    with torch.no_grad():
        image = model(model.noise(1, (h, w), seed, device), resize(content, (h, w)))
    seconds = time.perf_counter() - clock
    return TaskOutput([image.cpu()], {"seconds": round(seconds, 4), "device": str(device), "size": [w, h],
                                      "loss_start": None, "loss_end": None})
