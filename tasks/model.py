"""The network's settings and names, torch-free: VGG19's layer names (what a manifest may ask for)
and the one identifier of the weights a task ran through (task ids, records, the catalog)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

# Layers per block of VGG19's ``features``: conv/relu pairs then one pool.
BLOCKS = (2, 2, 4, 4, 4)


def layer_names() -> list[str]:
    """Names of ``vgg19().features`` modules in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate(BLOCKS, start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


LAYERS = layer_names()


def weights_id(weights: str, seed: int = 0, pooling: str = "avg", precision: str = "fp32") -> str:
    """Short stable identifier of the network a task ran through, for task ids and records."""
    if weights == "random":
        base = f"random-seed{seed}"
    elif weights == "imagenet":
        base = "imagenet-IMAGENET1K_V1"
    else:
        base = "file-" + hashlib.sha256(weights.encode()).hexdigest()[:12]
    return f"{base}-{pooling}pool" + ("" if precision == "fp32" else f"-{precision}")


@dataclass(frozen=True)
class ModelSettings:
    """The manifest's `model:` section, resolved; one object carried from the manifest to the actors."""
    weights: str = "imagenet"  # imagenet | random | a path | an s3:// URI
    seed: int = 0  # of random weights
    pooling: str = "avg"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False

    @property
    def weights_id(self) -> str:
        return weights_id(self.weights, self.seed, self.pooling, self.precision)
