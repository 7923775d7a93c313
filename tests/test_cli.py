"""The single-render command (no Ray)."""
import pytest
from PIL import Image

from pipelines.cli import main
from tasks.generator import TextureGenerator, save_generator
from tests.conftest import DATA


def test_render_texture_writes_the_requested_size(tmp_path, capsys):
    out = tmp_path / "t.png"
    code = main(["render", "texture", str(DATA / "textures" / "pebbles.jpg"), "-o", str(out), "--size", "48x32",
                 "--iterations", "4", "--weights", "random", "--tileable", "--octaves", "2"])
    assert code == 0 and Image.open(out).size == (48, 32)
    printed = capsys.readouterr().out
    assert "loss" in printed and "->" in printed and " s on cpu" in printed


def test_render_style_with_two_styles(tmp_path):
    out = tmp_path / "s.png"
    assert main(["render", "style", str(DATA / "content" / "golden_gate.jpg"), str(DATA / "styles" / "cezanne.jpg"),
                 str(DATA / "styles" / "starry_night.jpg"), "--style-weights", "0.7", "0.3", "--preserve-colors",
                 "-o", str(out), "--size", "40", "--iterations", "3", "--weights", "random"]) == 0
    assert Image.open(out).size == (40, 30)


def test_render_generate_and_the_wrong_generator_for_stylize(tmp_path, capsys):
    weights = tmp_path / "g.safetensors"
    weights.write_bytes(save_generator(TextureGenerator(scales=3, channels=4)))
    out = tmp_path / "g.png"
    assert main(["render", "generate", str(weights), "-o", str(out), "--size", "64x32", "--count", "2"]) == 0
    assert Image.open(out).size == (64, 32) and Image.open(tmp_path / "g_1.png").size == (64, 32)
    capsys.readouterr()
    assert main(["render", "stylize", str(DATA / "content" / "golden_gate.jpg"), str(weights), "-o",
                 str(tmp_path / "s.png")]) == 2
    assert "needs a train_stylizer generator" in capsys.readouterr().err


def test_missing_weights_file_is_a_clear_usage_error(tmp_path, capsys):
    code = main(["render", "texture", str(DATA / "textures" / "pebbles.jpg"), "-o", str(tmp_path / "x.png"),
                 "--weights", str(tmp_path / "nope.pth")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["catalog", "{tmp}"], ["report", "{tmp}"], ["validate", "{tmp}/m.yaml"],
                                     ["status", "raysubmit_x", "--address", "http://127.0.0.1:9"]])
def test_light_commands_do_not_import_torch(tmp_path, command):
    import subprocess
    import sys

    (tmp_path / "m.yaml").write_text(f"name: m\noutput: out\nmodel: {{weights: random}}\njobs:\n"
                                     f"  - {{name: a, kind: mrf, inputs: {DATA / 'textures' / 'pebbles.jpg'}}}\n")
    args = [part.format(tmp=tmp_path) for part in command]
    code = ("import sys; from pipelines.cli import main; main(sys.argv[1:]); "
            "sys.exit(3 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_render_trains_a_texture_net_and_generates_from_it(tmp_path, capsys):
    """The trainings have render commands too: the PNG of samples plus the generator beside it."""
    out = tmp_path / "net.png"
    assert main(["render", "train_texture_net", str(DATA / "textures" / "pebbles.jpg"), "-o", str(out),
                 "--size", "32", "--iterations", "3", "--batch-size", "1", "--scales", "3", "--samples", "1",
                 "--weights", "random", "--norm", "instance"]) == 0
    assert (tmp_path / "net.safetensors").stat().st_size > 0 and "net.safetensors" in capsys.readouterr().out
    assert main(["render", "generate", str(tmp_path / "net.safetensors"), "-o", str(tmp_path / "g.png"),
                 "--size", "48"]) == 0
    assert Image.open(tmp_path / "g.png").size == (48, 48)


def test_render_rejects_a_choice_the_declaration_does_not_allow(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["render", "train_texture_net", str(DATA / "textures" / "pebbles.jpg"), "-o", str(tmp_path / "x.png"),
              "--padding", "mirror"])
    assert info.value.code == 2 and "invalid choice: 'mirror'" in capsys.readouterr().err


def test_missing_imagenet_weights_name_the_render_flag(tmp_path, monkeypatch, capsys):
    import urllib.request

    # urlopen caches its opener, proxies included, on first use: keep this test's dead proxy out of it.
    monkeypatch.setattr(urllib.request, "_opener", None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # a closed local proxy: the download fails offline or not
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    code = main(["render", "texture", str(DATA / "textures" / "pebbles.jpg"), "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err
    assert code == 2 and "--weights random" in err and "weights: random" not in err


@pytest.mark.parametrize("name, fmt", [("t.jpg", "JPEG"), ("t.webp", "WEBP"), ("t.png", "PNG")])
def test_render_writes_the_format_its_output_name_says(tmp_path, name, fmt):
    out = tmp_path / name
    assert main(["render", "texture", str(DATA / "textures" / "pebbles.jpg"), "-o", str(out), "--size", "32",
                 "--iterations", "2", "--weights", "random", "--quality", "80"]) == 0
    with Image.open(out) as image:
        assert image.format == fmt and image.size == (32, 32)


def test_render_refuses_what_it_cannot_write_before_rendering(tmp_path, capsys):
    """`-o x.gif` used to write PNG bytes into x.gif; an output under a file failed only after the render."""
    exemplar = str(DATA / "textures" / "pebbles.jpg")
    common = ["--weights", "random", "--size", "32", "--iterations", "1"]
    assert main(["render", "texture", exemplar, "-o", str(tmp_path / "x.gif"), *common]) == 2
    assert ".gif is not a format texfarm writes; use .jpeg, .jpg, .png, .webp" in capsys.readouterr().err
    (tmp_path / "afile").write_text("")
    assert main(["render", "texture", exemplar, "-o", str(tmp_path / "afile" / "x.png"), *common]) == 2
    err = capsys.readouterr().err
    assert "afile is not a folder" in err and "loss" not in err
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "x.gif").exists()


def test_unknown_options_and_bad_sizes_name_the_option(tmp_path, capsys):
    exemplar = str(DATA / "textures" / "pebbles.jpg")
    assert main(["render", "texture", exemplar, "-o", str(tmp_path / "t.png"), "--sise", "32"]) == 2
    assert "texfarm render texture: unknown option '--sise'; did you mean --size?" in capsys.readouterr().err
    assert main(["catalog", str(tmp_path), "--rebiuld"]) == 2
    assert "unknown option '--rebiuld'; did you mean --rebuild?" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse's own exit 2, with the option named
        main(["render", "texture", exemplar, "-o", str(tmp_path / "t.png"), "--size", "32x"])
    assert info.value.code == 2
    assert "argument --size: expected N or WxH (e.g. 512 or 768x512), not '32x'" in capsys.readouterr().err


def test_random_weights_without_the_preset_get_a_hint(tmp_path, capsys):
    exemplar = str(DATA / "textures" / "pebbles.jpg")
    args = ["render", "mrf", exemplar, "-o", str(tmp_path / "m.png"), "--weights", "random", "--size", "32",
            "--iterations", "1", "--octaves", "1"]
    assert main(args) == 0
    assert "hint: mrf's defaults are for ImageNet weights; with random weights add --preset random-weights" in \
        capsys.readouterr().err
    assert main(args + ["--preset", "random-weights"]) == 0
    assert "hint:" not in capsys.readouterr().err


def test_an_input_folder_without_images_says_so(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    path = tmp_path / "m.yaml"
    path.write_text("name: e\noutput: out\nmodel: {weights: random}\njobs:\n"
                    "  - {name: a, kind: texture, inputs: empty/}\n  - {name: b, kind: texture, inputs: notes}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "m.yaml:5: jobs[0].inputs: 'empty/' matches no input (it is an empty folder)" in err
    assert "m.yaml:6: jobs[1].inputs: 'notes' matches no input (it is a folder of 1 file but none is an image" in err


def test_render_prints_progress_and_saves_intermediate_images(tmp_path, capsys):
    """`render` at real sizes printed nothing until the end (neural-style: -print_iter, -save_iter)."""
    out = tmp_path / "t.png"
    assert main(["render", "texture", str(DATA / "textures" / "pebbles.jpg"), "-o", str(out), "--weights", "random",
                 "--size", "32", "--iterations", "20", "--print-every", "10", "--save-every", "20"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("octave ")]
    assert [line.split(", loss")[0] for line in lines] == ["octave 1/1 (32x32): iteration 10/20",
                                                            "octave 1/1 (32x32): iteration 20/20"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.png", "t_iter00020.png"]
    assert Image.open(tmp_path / "t_iter00020.png").size == (32, 32)
