"""The report, built from a real run of the test setup (local Ray, local output folder)."""
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.manifest import parse_manifest
from pipelines.report import build_report
from pipelines.run import run_manifest
from pipelines.storage import Storage
from tests.conftest import DATA

pytestmark = pytest.mark.slow


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.task_ids = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if "data-task-id" in attrs:
            self.task_ids.append(attrs["data-task-id"])


def _manifest(tmp_path, seeds=2):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    path = tmp_path / "run.yaml"
    path.write_text(f"""\
name: report-test
output: out
model: {{weights: random}}
cluster: {{workers: 2}}
jobs:
  - name: sweep
    kind: texture
    inputs: {DATA / 'textures' / 'pebbles.jpg'}
    seeds: {seeds}
    params: {{size: 32, iterations: 2}}
    sweep: {{exemplar_scale: [0.5, 1.0], tileable: [false, true]}}
  - name: mixed
    kind: texture
    inputs: [{DATA / 'textures' / 'red_peppers.jpg'}, broken.png]
    seeds: 1
    params: {{size: 32, iterations: 2}}
""")
    return parse_manifest(str(path))


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, ray_cluster):
    tmp_path = tmp_path_factory.mktemp("report")
    manifest = _manifest(tmp_path)
    run_manifest(manifest, stream=None)
    summary = build_report(Storage(), manifest.output, manifest.name)
    return tmp_path, manifest, summary


def _pages(report_dir: Path) -> dict[Path, str]:
    return {p: p.read_text() for p in [report_dir / "index.html", *sorted((report_dir / "jobs").rglob("*.html"))]}


def _links_and_ids(report_dir: Path) -> tuple[list[str], list[str]]:
    """Every task id on every page, and every link resolved to a file (asserted)."""
    ids = []
    for path, page in _pages(report_dir).items():
        parser = _Links()
        parser.feed(page)
        ids += parser.task_ids
        for link in parser.links:
            assert (path.parent / link).resolve().is_file(), (path, link)
    return ids, [str(p.relative_to(report_dir)) for p in _pages(report_dir)]


def test_every_task_appears_once_and_every_link_resolves(report_run):
    tmp_path, manifest, summary = report_run
    report_dir = Path(manifest.output) / "_report"
    ids, pages = _links_and_ids(report_dir)
    rows = pq.read_table(Path(manifest.output) / "catalog.parquet").to_pylist()
    assert sorted(ids) == sorted(r["task_id"] for r in rows)  # each exactly once, over all pages
    assert pages == ["index.html", "jobs/mixed/1.html", "jobs/sweep/1.html"]
    assert len(rows) == 2 * 2 * 2 + 2
    page = (report_dir / "jobs" / "sweep" / "1.html").read_text()
    assert {f"../../../sweep/{r['task_id']}.png" for r in rows if r["job"] == "sweep"} <= set(re.findall(
        r'href="([^"]+)"', page))
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "not a readable image" in failed[0]["error"]
    mixed = (report_dir / "jobs" / "mixed" / "1.html").read_text()
    card = re.search(rf'data-task-id="{failed[0]["task_id"]}".*?</figure>', mixed, re.S).group(0)
    assert "failed:" in card and "not a readable image" in card
    # The sweep is a table with one parameter per axis; tileable results are shown tiled 2x2.
    assert '<table class="sweep"><tr><th>exemplar_scale \\ tileable</th><th>false</th><th>true</th>' in page
    assert page.count("2x2 tiled") == 4
    assert page.count('class="quality"') == 8  # texture kinds report their network-free quality score
    assert page.count('<svg class="curve"') + mixed.count('<svg class="curve"') == len(rows) - 1
    index = (report_dir / "index.html").read_text()
    assert index.count("data-preview-id") == len(rows) and "input" in index  # small jobs: all in the preview
    assert (report_dir / "sweep.png").stat().st_size > 0 and (report_dir / "mixed.png").stat().st_size > 0


def test_regenerating_only_adds_what_is_new(report_run):
    tmp_path, manifest, _ = report_run
    again = build_report(Storage(), manifest.output, manifest.name)
    assert again.new_thumbnails == 0 and again.contact_sheets == [] and again.pages_written == []
    more = _manifest(tmp_path, seeds=3)  # one more seed per sweep point: 4 new tasks
    run_manifest(more, stream=None)
    third = build_report(Storage(), more.output, more.name)
    assert third.new_thumbnails == 4 and third.tasks == 14
    assert [Path(s).name for s in third.contact_sheets] == ["sweep.png"]
    assert third.pages_written == ["jobs/sweep/1.html", "index.html"]  # job "mixed" is untouched


def test_a_standalone_report_takes_the_runs_input_pixel_limit(report_run, tmp_path):
    """`texfarm report OUT` long after the run: an input over the run's limits.max_input_pixels (its task
    refused it) gets no thumbnail, so the report must be told a limit the run changed."""
    from pipelines.cli import main

    _, manifest, _ = report_run
    inputs = Path(manifest.output) / "_report" / "inputs"
    assert list(inputs.glob("*.jpg")), "the run's own report shows its inputs"
    copy = tmp_path / "out"
    shutil.copytree(manifest.output, copy, ignore=shutil.ignore_patterns("_report"))
    assert main(["report", str(copy), "--max-input-pixels", "1000"]) == 0
    assert not (copy / "_report" / "inputs").exists() or not list((copy / "_report" / "inputs").glob("*.jpg"))
    with pytest.raises(SystemExit) as refused:
        main(["report", str(copy), "--max-input-pixels", "0"])
    assert refused.value.code == 2


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser_or_skip():
    browser = _chromium()
    if browser is None and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    assert browser, "chromium missing: .ci/run should have installed it"
    return browser


def _chromium_flags(browser, tmp_path):
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,12000", "--enable-logging=stderr",
            "--log-level=0", "--virtual-time-budget=5000"]


def _load(flags, page: Path) -> dict[str, int]:
    """Open ``page`` in headless Chromium; the page's self-check counts images, broken ones and errors."""
    dom = subprocess.run(flags + ["--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    attrs = {k: int(v) for k, v in re.findall(r'data-(\w+)="(\d+)"', body)}
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "error" in line.lower() or "uncaught" in line.lower()], console
    return attrs


def test_page_loads_in_a_real_browser(report_run, tmp_path):
    _, manifest, _ = report_run
    flags = _chromium_flags(_browser_or_skip(), tmp_path)
    report_dir = Path(manifest.output) / "_report"
    for page, least in ((report_dir / "index.html", 10), (report_dir / "jobs" / "sweep" / "1.html", 8)):
        attrs = _load(flags, page)
        assert attrs["images"] >= least and attrs["broken"] == 0 and attrs["errors"] == 0, (page, attrs)
    shot = tmp_path / "report.png"
    subprocess.run(flags + [f"--screenshot={shot}", (report_dir / "index.html").resolve().as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000


def _synthetic_output(output: Path, tasks: int) -> None:
    """A finished run's output without rendering: tiny PNGs, records and the catalog."""
    import json

    from PIL import Image

    from pipelines import catalog

    rows = []
    (output / "big").mkdir(parents=True)
    for i in range(tasks):
        task_id = f"{i:016x}"
        Image.new("RGB", (16, 16), (i % 256, (i * 7) % 256, 90)).save(output / "big" / f"{task_id}.png")
        record = {"task_id": task_id, "job": "big", "kind": "texture", "status": "done", "seed": i,
                  "params": {"size": 16}, "inputs": {"inputs": []}, "loss_end": 1.0 / (i + 1), "seconds": 0.1,
                  "octaves": [{"history": [3.0, 2.0, 1.0]}], "output_uri": str(output / "big" / f"{task_id}.png")}
        (output / "big" / f"{task_id}.json").write_text(json.dumps(record))
        rows.append(catalog.row(record))
    catalog.write(Storage(), str(output), rows)


def test_a_large_job_is_paginated_and_a_page_opens_in_a_browser(tmp_path):
    """1,200 tasks: the index stays small, pages of PAGE_CARDS hold every task once, a re-report writes
    nothing, and a full page loads in Chromium with no broken image."""
    from pipelines import report

    output = tmp_path / "out"
    _synthetic_output(output, 1200)
    first = build_report(Storage(), str(output), "big")
    report_dir = output / "_report"
    ids, pages = _links_and_ids(report_dir)
    assert pages == ["index.html", "jobs/big/1.html", "jobs/big/2.html", "jobs/big/3.html"]
    assert sorted(ids) == sorted(f"{i:016x}" for i in range(1200))
    assert (report_dir / "index.html").stat().st_size < 30_000
    assert first.new_thumbnails == 1200 and len(first.pages_written) == 4
    again = build_report(Storage(), str(output), "big")
    assert (again.new_thumbnails, again.pages_written, again.contact_sheets) == (0, [], [])
    flags = _chromium_flags(_browser_or_skip(), tmp_path)
    attrs = _load(flags, report_dir / "jobs" / "big" / "2.html")
    assert attrs["images"] == report.PAGE_CARDS and attrs["broken"] == 0 and attrs["errors"] == 0, attrs


def test_sweep_axes_sort_numbers_by_value():
    from pipelines.report import _axis_order

    assert sorted(["10.0", "2", "0.5", '"big"', "false"], key=_axis_order) == ["0.5", "2", "10.0", '"big"', "false"]


def test_sweep_tables_and_contact_sheets_at_scale(tmp_path):
    """4,900 tasks of a 2-axis sweep: every card lands in its cell once (one pass over the rows), and the
    contact sheet stays bounded; kinds without a loss do not break it."""
    import io as _io
    import json as _json
    import re as _re

    from PIL import Image as _Image

    from pipelines import report
    from pipelines.storage import Storage

    rows = [{"task_id": f"t{i}", "job": "j", "seed": i % 4, "status": "done", "loss_end": None,
             "params": _json.dumps({"a": i % 35, "b": (i // 35) % 35})} for i in range(4900)]
    cards = {r["task_id"]: f"<i>{r['task_id']}</i>" for r in rows}
    table = report._sweep_table(rows, ["a", "b"], cards)
    assert table.count("<tr>") == 36 and sorted(_re.findall(r"<i>(t\d+)</i>", table)) == sorted(cards)
    cell = table.split("<tr><th>3</th>")[1].split("</tr>")[0].split("<td>")[5]  # a = 3, b = 4 (columns 0..)
    assert {int(t[1:]) for t in _re.findall(r"<i>(t\d+)</i>", cell)} == {i for i in range(4900) if i % 35 == 3
                                                                        and (i // 35) % 35 == 4}
    sheet = report._contact_sheet(Storage(), str(tmp_path), rows, report._State(Storage(), str(tmp_path)))
    with _Image.open(_io.BytesIO(sheet)) as image:
        assert image.width * image.height <= 8 * (report.THUMB + 8) * 32 * (report.THUMB + 22)


def test_reading_the_output_root_as_a_dataset_finds_only_renders(report_run):
    """Ray Data and pyarrow skip paths with a part starting with '_' or '.': the report's thumbnails,
    pages and contact sheets live under `_report/`, so an image dataset read from the output root is
    exactly the renders."""
    _, manifest, _ = report_run
    root = Path(manifest.output)
    images = {p for p in root.rglob("*") if p.suffix in (".png", ".jpg", ".jpeg", ".webp")
              and not any(part.startswith(("_", ".")) for part in p.relative_to(root).parts)}
    rows = pq.read_table(root / "catalog.parquet").to_pylist()
    assert images == {Path(r["output_uri"]) for r in rows if r["status"] == "done"}
    assert list((root / "_report").rglob("*.jpg"))  # the thumbnails are there, out of the way


def test_a_blank_or_noisy_render_is_flagged_poor():
    """The quality score is lenient with a blank render of a background-dominated exemplar (0.66 for
    the dots on white), so the report also flags a render with few of the exemplar's colours."""
    from pipelines.report import _poor

    assert _poor({"quality": 1.3, "colour_coverage": 0.9})  # further from the exemplar than noise
    assert _poor({"quality": 0.66, "colour_coverage": 0.14})  # the blank dots render, measured
    assert not _poor({"quality": 0.08, "colour_coverage": 1.0})  # the balanced MRF's dots, measured
    assert not _poor({"quality": None, "colour_coverage": None})  # kinds without an exemplar


def test_cards_name_their_exemplar_tiny_renders_are_scaled_up_and_the_score_reads_as_a_distance(tmp_path):
    """A sweep over two exemplars gave cards with no exemplar label; a 16 px render was a 16 px thumbnail;
    "median quality 0.14 (0 poor)" read as if higher were better; "1 tasks"."""
    import json

    from PIL import Image

    from pipelines import catalog, report

    output = tmp_path / "out"
    (output / "j").mkdir(parents=True)
    rows = []
    for i, exemplar in enumerate(["pebbles.jpg", "dots.png"]):
        task_id = f"{i:016x}"
        Image.new("RGB", (16, 12), (200, 40 * i, 90)).save(output / "j" / f"{task_id}.png")
        record = {"task_id": task_id, "job": "j", "kind": "texture", "status": "done", "seed": 0,
                  "params": {"size": 16}, "inputs": {"inputs": [f"/data/{exemplar}"]}, "loss_end": 0.5,
                  "seconds": 0.1, "quality": 0.14, "colour_coverage": 0.9,
                  "output_uri": str(output / "j" / f"{task_id}.png")}
        (output / "j" / f"{task_id}.json").write_text(json.dumps(record))
        rows.append(catalog.row(record))
    catalog.write(Storage(), str(output), rows)
    build_report(Storage(), str(output), "labels")
    page = (output / "_report" / "jobs" / "j" / "1.html").read_text()
    assert "seed 0 · pebbles.jpg" in page and "seed 0 · dots.png" in page
    index = (output / "_report" / "index.html").read_text()
    assert "distance to exemplar (lower is better)" in index and "0.14 (0 flagged)" in index and "poor)" not in index
    assert "2 tasks in 1 job:" in index
    state = json.loads((output / "_report" / "state.json").read_text())
    thumb = Image.open(output / "_report" / state["tasks"][f"{0:016x}"]["thumb"])
    assert thumb.size == (16 * (report.THUMB // 16), 12 * (report.THUMB // 16))  # whole pixels, kept sharp
