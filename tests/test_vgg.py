import os
import shutil

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
    import urllib.request

    monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen would cache the dead proxy for the session
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


def _features_and_input_grad(net: VGGFeatures, image: torch.Tensor, layers: list[str]):
    x = image.clone().requires_grad_()
    feats = net(x, layers)
    sum(f.square().mean() for f in feats.values()).backward()
    return feats, x.grad


@pytest.mark.parametrize("options, tolerance", [
    ({"channels_last": True}, 1e-4),
    ({"precision": "bf16"}, 0.02),
    ({"precision": "fp16"}, 0.01),
    ({"precision": "bf16", "channels_last": True}, 0.02),
])
def test_speed_options_keep_the_features(options, tolerance):
    """bf16 autocast and channels-last change how the network runs, not what it computes: the
    activations (returned in fp32) and the image gradient stay close to plain fp32."""
    layers = ["relu1_1", "relu2_1", "relu3_1"]
    image = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    plain, plain_grad = _features_and_input_grad(VGGFeatures("random", last_layer="relu3_1"), image, layers)
    fast, fast_grad = _features_and_input_grad(VGGFeatures("random", last_layer="relu3_1", **options), image, layers)
    for name in layers:
        assert fast[name].dtype == torch.float32 and fast[name].shape == plain[name].shape
        error = (fast[name] - plain[name]).norm() / plain[name].norm()
        assert error < tolerance, (name, error)
    assert (fast_grad - plain_grad).norm() / plain_grad.norm() < tolerance * 2
    if "precision" in options:  # it really ran in reduced precision
        assert not torch.equal(fast["relu3_1"], plain["relu3_1"])


@pytest.mark.skipif(not shutil.which(os.environ.get("CXX", "g++")), reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_network_matches_eager_with_either_padding():
    """``compile=True`` runs the same network through torch.compile; circular padding (tileable
    renders) switched on after the first compile must still take effect."""
    layers = ["relu1_1", "relu2_1"]
    image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    eager = VGGFeatures("random", last_layer="relu2_1")
    compiled = VGGFeatures("random", last_layer="relu2_1", compile=True)
    for mode in ("zeros", "circular"):
        with eager.padding(mode), compiled.padding(mode):
            want, want_grad = _features_and_input_grad(eager, image, layers)
            got, got_grad = _features_and_input_grad(compiled, image, layers)
        for name in layers:
            assert torch.allclose(got[name], want[name], atol=1e-5), (mode, name)
        assert torch.allclose(got_grad, want_grad, atol=1e-8, rtol=1e-4), mode
    with compiled.padding("circular"):  # the circular result differs from zeros at the border
        rolled = compiled(image.roll(7, dims=-1), ["relu1_1"])["relu1_1"]
        assert torch.allclose(rolled, compiled(image, ["relu1_1"])["relu1_1"].roll(7, dims=-1), atol=1e-5)


def test_in_place_relu_keeps_activations_and_gradients_and_a_tapped_conv_intact(vgg):
    """ReLUs run in place (half the activation memory of the conv+ReLU pairs) unless the conv before
    them is tapped; features and the gradient to the image equal a plain out-of-place pass."""
    import torch

    image = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    layers = ["conv1_1", "relu1_1", "pool1", "relu2_1", "conv3_1", "relu3_1"]

    def run(net_forward):
        x = image.clone().requires_grad_(True)
        feats = net_forward(x)
        sum(f.square().mean() for f in feats.values()).backward()
        return {k: v.detach() for k, v in feats.items()}, x.grad

    def plain(x):  # out of place throughout
        out, names = {}, vgg.names
        h = (x - vgg.mean) / vgg.std
        for index, module in enumerate(vgg.layers[: names.index("relu3_1") + 1]):
            h = torch.relu(h) if isinstance(module, torch.nn.ReLU) else module(h)
            if names[index] in layers:
                out[names[index]] = h
        return out

    feats, grad = run(lambda x: vgg(x, layers))
    expected, expected_grad = run(plain)
    for name in layers:
        assert torch.equal(feats[name], expected[name]), name
    assert (feats["conv1_1"] < 0).any()  # the tapped conv was not overwritten by its ReLU
    assert torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-8)
