"""cluster.yaml goes through Ray's own config handling (defaults filled in, then its JSON schema), so a
typo or a misplaced key fails CI; and the choices that make `ray up` work hold."""
import re
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO


def _config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_ray_accepts_the_cluster_config_after_filling_its_defaults():
    config = prepare_config(_config())
    validate_config(config)
    assert config["head_node_type"] in config["available_node_types"]


def test_the_cluster_comes_up_the_way_ray_expects():
    config = _config()
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    # The head keeps the role Ray creates for the autoscaler (EC2 launches, iam:PassRole).
    assert "IamInstanceProfile" not in head["node_config"]
    assert head["resources"] == {"CPU": 0}  # no render actor on the head
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert all(t["min_workers"] == 0 and t["node_config"].get("IamInstanceProfile") for t in workers)
    markets = [t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") for t in workers]
    assert "spot" in markets and None in markets  # spot, with an on-demand fallback
    # Nothing heavy is synced or installed at boot.
    assert {".venv", ".git", "out"} <= set(config["rsync_exclude"])
    assert not config.get("setup_commands")
    # The image is the one the Dockerfile builds, on the Ray version the Dockerfile pins.
    dockerfile = (REPO / "Dockerfile").read_text()
    ray_version = re.search(r"ARG RAY_VERSION=(\S+)", dockerfile).group(1)
    assert "FROM rayproject/ray:${RAY_VERSION}-py311-gpu" in dockerfile
    assert config["docker"]["image"].endswith("/texfarm:0.1.0")
    import ray

    assert ray.__version__ == ray_version, "keep the image's Ray equal to the client's (pyproject)"
    assert Path(REPO / ".dockerignore").exists()
