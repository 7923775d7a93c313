import pytest
import torch
from safetensors.torch import save_file

from tasks.vgg import LAYERS, VGGFeatures, WeightsUnavailable, build_vgg19


def test_layer_names_follow_vgg19():
    assert LAYERS[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert LAYERS[LAYERS.index("relu4_2")] == "relu4_2" and LAYERS[-1] == "pool5"
    assert len(LAYERS) == len(build_vgg19("random").features)


def test_truncated_after_deepest_layer_and_returns_named_activations(vgg):
    small = VGGFeatures("random", last_layer="relu3_1")
    assert small.names[-1] == "relu3_1"
    feats = vgg(torch.rand(1, 3, 64, 48), ["relu1_1", "pool2", "relu4_2"])
    assert set(feats) == {"relu1_1", "pool2", "relu4_2"}
    assert feats["relu1_1"].shape == (1, 64, 64, 48)
    assert feats["pool2"].shape == (1, 128, 16, 12)
    assert not any(p.requires_grad for p in vgg.parameters())
    with pytest.raises(ValueError, match="past this extractor"):
        small(torch.rand(1, 3, 32, 32), ["relu4_1"])


def test_random_weights_are_seeded():
    a, b, c = (build_vgg19("random", seed=s).features[0].weight for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_circular_padding_is_temporary(vgg):
    x = torch.rand(1, 3, 32, 32)
    with vgg.padding("circular"):
        shifted = vgg(x.roll(5, dims=-1), ["relu1_1"])["relu1_1"]
        plain = vgg(x, ["relu1_1"])["relu1_1"]
        # With circular padding, convolution commutes with a circular shift.
        assert torch.allclose(shifted, plain.roll(5, dims=-1), atol=1e-5)
    assert all(m.padding_mode == "zeros" for m in vgg.layers if isinstance(m, torch.nn.Conv2d))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_state_dict_loads_from_a_path(tmp_path, suffix):
    source = build_vgg19("random", seed=5)
    path = tmp_path / f"vgg19{suffix}"
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    loaded = VGGFeatures(str(path), last_layer="relu2_1")
    assert torch.equal(loaded.layers[0].weight, source.features[0].weight)


def test_bad_weight_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        build_vgg19(str(tmp_path / "missing.pth"))
    not_vgg = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, not_vgg)
    with pytest.raises(WeightsUnavailable, match="not a VGG19 state dict"):
        build_vgg19(str(not_vgg))


def test_failed_imagenet_download_names_the_alternatives(tmp_path, monkeypatch):
    # A closed local proxy makes the real download fail the same way with or without internet.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(WeightsUnavailable) as info:
        build_vgg19("imagenet")
    message = str(info.value)
    assert "weights: random" in message and "s3://" in message and "/path/" in message
