"""Shared fixtures. Heavy real components (a local Ray cluster, an S3 endpoint on 127.0.0.1) are
started once per test session and only by the tests that ask for them."""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest
import torch

from tasks.imageio import load_image
from tasks.vgg import VGGFeatures

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"

# Fake credentials for the local S3 endpoint; set before Ray starts so its workers inherit them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing-secret-value")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Two threads for one test process; one each when pytest-xdist runs two (make test), so that the
# workers do not fight over the cores.
torch.set_num_threads(2 if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") == "1" else 1)


@pytest.fixture(scope="session")
def vgg() -> VGGFeatures:
    return VGGFeatures("random", pooling="avg", seed=0, last_layer="relu5_1")


@pytest.fixture(scope="session")
def pebbles() -> torch.Tensor:
    return load_image(str(DATA / "textures" / "pebbles.jpg"))


@pytest.fixture(scope="session")
def dots() -> torch.Tensor:
    return load_image(str(DATA / "textures" / "dots.png"))


@pytest.fixture(scope="session")
def content_image() -> torch.Tensor:
    return load_image(str(DATA / "content" / "golden_gate.jpg"))


@pytest.fixture(scope="session")
def starry() -> torch.Tensor:
    return load_image(str(DATA / "styles" / "starry_night.jpg"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray instance with 2 CPUs, shared by every test that needs it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 HTTP endpoint (moto's server mode) on 127.0.0.1; boto3 talks to it over the network."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def bucket(s3_endpoint, request):
    """A fresh bucket per test, named after the test."""
    import boto3

    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
    name = f"t-{digest}-" + request.node.name.lower().replace("_", "-")[:40].strip("-[]")
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=name)
    return name, client


def seam_ratio(image: torch.Tensor) -> float:
    """The step across the wrap-around edges (right to left, bottom to top) over the median step inside:
    about 1 for a tileable image, well above for one whose opposite edges were made apart."""
    img = image[0]
    inside = torch.cat([(img[:, :, 1:] - img[:, :, :-1]).abs().mean(dim=(0, 1)),
                        (img[:, 1:, :] - img[:, :-1, :]).abs().mean(dim=(0, 2))]).median()
    seam = ((img[:, :, 0] - img[:, :, -1]).abs().mean() + (img[:, 0, :] - img[:, -1, :]).abs().mean()) / 2
    return float(seam / inside)
