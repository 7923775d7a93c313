"""``python -m bench``: print a table and optionally write it to docs/benchmarks.md.

  python -m bench --sizes 256 512 1024 --iterations 100          # tasks on this device
  python -m bench --sizes 64 128 --pipeline --tasks 4              # + the pipeline against direct runs
                                                                   #   and 2 actors against 1
  python -m bench --quality                                        # output quality of every texture kind
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from tasks.device import describe, pick_device
from tasks.imageio import load_image
from tasks.vgg import VGGFeatures

from .goals import goal_rows
from .tasks_bench import batch_row, gatys_texture_row, matching_row, mrf_texture_row

DATA = Path(__file__).resolve().parents[1] / "data"


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(rows[0])
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--quality" in argv:  # its own options: texfarm bench --quality --help
        from .quality_bench import main as quality_main

        return quality_main(argv)
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--device")
    parser.add_argument("--pipeline", action="store_true", help="also run tasks through texfarm run + local S3")
    parser.add_argument("--tasks", type=int, default=3, help="tasks per size for --pipeline")
    parser.add_argument("--workers", type=int, default=2,
                        help="--pipeline also measures this many CPU actors against one (1: skip)")
    parser.add_argument("--no-warmup", action="store_true",
                        help="--pipeline: time the first run, actor start-up included (a smoke test, not a figure)")
    parser.add_argument("--mrf", action="store_true", help="also the MRF task and the patch matching")
    parser.add_argument("--chunk", type=int, default=4096, help="MRF matching chunk")
    parser.add_argument("--matching", nargs="+", default=["1024x4096", "4096x16384"], metavar="QUERIESxPATCHES",
                        help="--mrf: the patch-matching shapes (queries x exemplar patches, 2304-dim features)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="also measure the network in this precision (against fp32, same run)")
    parser.add_argument("--channels-last", action="store_true", help="also measure channels-last")
    parser.add_argument("--compile", action="store_true", help="also measure the network under torch.compile")
    parser.add_argument("--optimizer", action="store_true", help="also torch's L-BFGS against ours: time, ops, syncs")
    parser.add_argument("--batch", type=int, default=1, help="also measure N textures per VGG pass")
    parser.add_argument("--nets", action="store_true", help="also Texture Networks generation and training")
    parser.add_argument("--train-steps", type=int, default=20, help="training steps for --nets")
    parser.add_argument("--reference", action="store_true",
                        help="also each kind's render-time breakdown against a minimal torchvision objective, peak "
                             "memory of one evaluation against it, and GFLOP/s against a large matmul")
    parser.add_argument("--repeat", type=int, default=1, help="--reference: renders per row (the median is shown)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--output", help="write the tables (markdown) to this file")
    args = parser.parse_args(argv)
    if args.pipeline and not args.threads:
        args.threads = 1  # the pipeline's CPU actor uses one thread: compare like with like
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    vgg = VGGFeatures("random", last_layer="relu5_1", device=device)
    exemplar = load_image(str(DATA / "textures" / "pebbles.jpg"))
    header = (f"device: {describe(device)}; torch {torch.__version__}; {platform.processor() or platform.machine()}; "
              f"{torch.get_num_threads()} CPU threads; {time.strftime('%Y-%m-%d')}")
    rows = [{"variant": "fp32", **gatys_texture_row(vgg, exemplar, size, args.iterations)} for size in args.sizes]
    variant_rows = []
    if args.precision != "fp32" or args.channels_last:
        fast = VGGFeatures("random", last_layer="relu5_1", device=device, precision=args.precision,
                           channels_last=args.channels_last)
        name = args.precision + (" + channels_last" if args.channels_last else "")
        variant_rows = [{"variant": name, **gatys_texture_row(fast, exemplar, size, args.iterations)} for size in args.sizes]
    if args.compile:
        compiled = VGGFeatures("random", last_layer="relu5_1", device=device, compile=True)
        variant_rows += [{"variant": "compiled", **gatys_texture_row(compiled, exemplar, size, args.iterations)}
                         for size in args.sizes]
    out = [f"## Gatys texture vs the VGG ceiling\n\n{header}\n\n{_table(rows + variant_rows)}"]
    if args.reference:
        from .reference import cuda_memory_rows, matmul_gflops, memory_rows, reference_rows

        content = load_image(str(DATA / "content" / "golden_gate.jpg"))
        ref = reference_rows(vgg, exemplar, content, args.sizes, args.iterations, repeats=args.repeat)
        out.append(f"## Where a render's time goes, against a minimal reference objective (frozen torchvision VGG19, "
                   f"in-place ReLU, Gram by one matmul)\n\n{header}; a {matmul_gflops(device):.1f} GFLOP/s "
                   f"2048x2048 matmul on this device\n\n{_table(ref)}")
        if device.type == "cpu":
            memory = memory_rows(args.sizes, threads=torch.get_num_threads())
            out.append(f"## Peak memory of one evaluation (Gram texture layers, fresh process each)\n\n{header}\n\n"
                       f"{_table(memory)}")
        else:
            out.append(f"## Peak memory of one evaluation\n\n{header}\n\n{_table(cuda_memory_rows(device, args.sizes))}")
    if args.optimizer:
        from .optimizer_bench import optimizer_rows

        opt = [row for size in args.sizes for row in optimizer_rows(vgg, exemplar, size, args.iterations)]
        out.append(f"## L-BFGS per iteration: torch.optim.LBFGS vs ours (Gatys texture objective)\n\n{header}\n\n"
                   f"{_table(opt)}")
    batch, prow = [], []
    if args.batch > 1:
        batch = [batch_row(vgg, exemplar, size, args.iterations, args.batch) for size in args.sizes]
        out.append(f"## Batched Gatys textures ({args.batch} per VGG pass) vs one at a time\n\n{header}\n\n{_table(batch)}")
    if args.mrf:
        mrf_rows = [mrf_texture_row(vgg, exemplar, size, args.iterations) for size in args.sizes]
        for mrf_row, gatys_row in zip(mrf_rows, rows):
            mrf_row["gatys_seconds"] = gatys_row["seconds_per_texture"]
            mrf_row["mrf_over_gatys"] = mrf_row["seconds_per_texture"] / gatys_row["seconds_per_texture"]
        shapes = [tuple(int(n) for n in shape.lower().split("x")) for shape in args.matching]
        match = [matching_row(device, q, m, 256 * 9, args.chunk) for q, m in shapes]
        out.append(f"## MRF texture vs Gatys (same sizes, iterations, device)\n\n{header}\n\n{_table(mrf_rows)}")
        out.append(f"## Patch matching vs a plain matrix product of the same shape\n\n{header}\n\n{_table(match)}")
    if args.nets:
        from .nets_bench import arch_rows, generate_row, training_rows

        gen = [generate_row(vgg, exemplar, row["size"], row["seconds_per_texture"], args.train_steps) for row in rows]
        out.append(f"## Texture Networks: one-pass generate vs Gatys optimization ({args.iterations} iterations)"
                   f"\n\n{header}\n\n{_table(gen)}")
        train = training_rows(vgg, exemplar, 64, args.train_steps, packed=2)
        archs = arch_rows(vgg, exemplar, args.train_steps, render=max(args.sizes))
        out.append(f"## Texture Networks: generator architectures, same training time\n\n{header}\n\n{_table(archs)}")
        out.append(f"## Texture Networks: training throughput, 1 vs 2 trainings packed on one device\n\n"
                   f"{header}\n\n{_table(train)}")
    if args.pipeline:
        from .pipeline_bench import pipeline_rows

        prow, scaling = pipeline_rows(args.sizes, args.iterations, args.tasks, vgg, exemplar, args.workers,
                                      warm_up=not args.no_warmup)
        out.append(f"## Pipeline (texfarm run, 1 CPU actor, S3 on 127.0.0.1) vs direct\n\n{header}\n\n{_table(prow)}")
        if scaling:
            out.append(f"## Pipeline scaling: {args.workers} actors vs 1 (one thread each)\n\n{header}\n\n"
                       f"{_table(scaling)}")
    goals = goal_rows(device.type, {"gatys": rows, "batch": batch, "pipeline": prow})
    out.append(f"## The performance goals against this run\n\n{header}\n\n{_table(goals)}")
    text = "\n\n".join(out)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
