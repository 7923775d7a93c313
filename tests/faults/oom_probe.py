"""Run in a subprocess with a capped address space, so allocations past the cap fail for real
(the CPU analogue of CUDA out-of-memory). Prints one JSON line with what happened."""
import json
import resource
import sys

import torch

from pipelines.renderer import Renderer
from tasks.patches import nearest_patches


def vm_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize")


def main(data_dir: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    renderer = Renderer(model={"weights": "random"}, threads=1)
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(20000, 8, generator=generator)
    exemplar = torch.randn(40000, 8, generator=generator)
    reference = nearest_patches(query, exemplar, chunk=256)  # before the cap: 20 MB blocks
    headroom = 600 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + headroom, resource.RLIM_INFINITY))
    # A 40000-row chunk needs a 3.2 GB score block: refused, halved until it fits.
    match = nearest_patches(query, exemplar, chunk=40000)
    base = {"job": "j", "kind": "texture", "seed": 0, "inputs": {"inputs": [f"{data_dir}/textures/pebbles.jpg"]}}
    huge = renderer.render({**base, "task_id": "huge", "params": {"size": 4096, "iterations": 1},
                            "output_prefix": f"{out_dir}/j/huge"})
    small = renderer.render({**base, "task_id": "small", "params": {"size": 32, "iterations": 2},
                             "output_prefix": f"{out_dir}/j/small"})
    print(json.dumps({"chunk_used": match.chunk, "same": bool(torch.equal(match.index, reference.index)),
                      "huge": [huge["status"], huge["error"]], "small": small["status"]}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
