"""One declaration module per task kind: its parameters and its ``Kind`` (torch-free)."""
