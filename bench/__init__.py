"""Benchmarks (``python -m bench``): the VGG ceiling, the task kinds, and the pipeline's own cost."""
