"""The run report: ``{output}/_report/index.html`` (per job: inputs, counts, a preview and links to its
pages), ``_report/jobs/{job}/{n}.html`` (PAGE_CARDS tasks a page: thumbnails, sweeps as tables, loss
curves, failures with their errors) and a bounded contact sheet PNG per job. Relative links only, so
the folder can be synced anywhere or served by any static server. Incremental: thumbnails are made
once, and ``_report/state.json`` remembers them with a digest of every page and sheet, so a report
after a resume reads only new records and writes only what changed, also on S3."""
from __future__ import annotations

import hashlib
import html
import io
import json
import math
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from PIL import Image, ImageDraw

from tasks.imagefile import DEFAULT_MAX_PIXELS, decode_rgb

from . import catalog, records
from .storage import Storage, StorageError, join, readable
from .words import counted

REPORT = "_report"  # "_": Ray Data and pyarrow skip it, so reading the output root finds only renders
THUMB = 160  # px, long side
STATE = "state.json"


@dataclass
class ReportSummary:
    index_uri: str
    tasks: int
    new_thumbnails: int
    contact_sheets: list[str]
    pages_written: list[str]  # report-relative paths of the pages this call wrote


SHEET_TILES = 256  # tiles per contact sheet: 8 x 32 thumbnails, about 1.3 x 5 kpx
PAGE_CARDS = 500  # tasks per job page: a 100,000-task job is 200 pages of ~0.5 MB, each quick to open
PREVIEW = 8  # cards of each job on the index page
POOR_QUALITY = 1.0  # a quality score above this is further from the exemplar than noise or its blank ground: flagged
# ... or a render with under this share of the exemplar's colours: the score is lenient with a blank
# render of a background-dominated exemplar (0.66 for blank dots), its colour coverage is not (0.14).
POOR_COVERAGE = 0.3


def _poor(row: dict) -> bool:
    quality, coverage = row.get("quality"), row.get("colour_coverage")
    return (quality is not None and quality > POOR_QUALITY) or (coverage is not None and coverage < POOR_COVERAGE)

OUTLINE = (255, 0, 255)  # the border between kept and made pixels (repair, expand) on a thumbnail


def _thumbnail(data: bytes, tile: bool, name: str = "image", outline: Optional[list] = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """``outline`` [x0, y0, x1, y1]: a box drawn on the image (a repair's made region, an expand's kept
    original), so the card shows what was kept and what was made."""
    # the tasks' decoder (EXIF rotation, alpha over white, bit depth); a JPEG decoded at reduced scale
    image = decode_rgb(data, max_pixels, name=name, at_least=None if outline else THUMB)
    if outline:
        from PIL import ImageDraw

        x0, y0, x1, y1 = outline
        ImageDraw.Draw(image).rectangle([x0, y0, x1 - 1, y1 - 1], outline=OUTLINE,
                                        width=max(1, max(image.size) // THUMB))
    if tile:  # a 2x2 tiling shows a seam, or its absence, at a glance
        tiled = Image.new("RGB", (image.width * 2, image.height * 2))
        for x in (0, image.width):
            for y in (0, image.height):
                tiled.paste(image, (x, y))
        image = tiled
    image.thumbnail((THUMB, THUMB))
    factor = THUMB // max(image.size)
    if factor >= 2:  # a tiny render (a 32 px test, a 64 px tile) shown at card size, its pixels kept sharp
        image = image.resize((image.width * factor, image.height * factor), Image.NEAREST)
    return image


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _curve(record: dict[str, Any]) -> list[float]:
    """The loss after each check, octave after octave (at most 60 points)."""
    points = [v for octave in record.get("octaves", []) for v in octave.get("history", [])]
    points = [p for p in points if isinstance(p, (int, float)) and p > 0 and math.isfinite(p)]
    step = max(1, len(points) // 60)
    return [float(f"{p:.4g}") for p in points[::step]]  # 4 digits draw the same line in a smaller state


def _svg(points: list[float], width: int = THUMB, height: int = 36) -> str:
    if len(points) < 2:
        return ""
    logs = [math.log10(p) for p in points]
    low, high = min(logs), max(logs)
    span = (high - low) or 1.0
    xy = " ".join(f"{i * (width - 2) / (len(logs) - 1) + 1:.1f},{(high - v) / span * (height - 4) + 2:.1f}"
                  for i, v in enumerate(logs))
    return (f'<svg class="curve" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f"<title>loss {points[0]:.4g} → {points[-1]:.4g} (log scale)</title>"
            f'<polyline fill="none" stroke="#c0392b" stroke-width="1.5" points="{xy}"/></svg>')


class _State:
    def __init__(self, storage: Storage, output: str) -> None:
        self.uri = join(output, REPORT, STATE)
        try:
            data = json.loads(storage.read(self.uri))
        except (StorageError, ValueError):
            data = {}
        self.tasks: dict[str, dict] = data.get("tasks", {})
        self.inputs: dict[str, str] = data.get("inputs", {})
        self.digests: dict[str, str] = data.get("digests", {})  # report-relative path -> sha256 of what is there
        # Page order: the order in which the report first saw each task, so new tasks go to the last
        # page and the pages before it stay as they are (nothing to rewrite, nothing to re-upload).
        self.order: dict[str, int] = data.get("order", {})
        self.loaded = self.dumps() if data else b""

    def dumps(self) -> bytes:
        return json.dumps({"tasks": self.tasks, "inputs": self.inputs, "digests": self.digests, "order": self.order},
                          sort_keys=True).encode()


def _process_task(storage: Storage, output: str, row: dict) -> dict:
    """Thumbnail and loss curve of one done task, or just its error."""
    entry = {"status": row["status"]}
    if row["status"] != "done":
        return entry
    prefix = join(output, row["job"], row["task_id"])
    record = json.loads(storage.read(prefix + records.RECORD_SUFFIX))
    tileable = bool(record.get("params", {}).get("tileable"))
    thumb = f"thumbs/{row['job']}/{row['task_id']}.jpg"
    image_uri = record.get("output_uri") or prefix + ".png"  # .jpg / .webp when the job asked for them
    outline = record.get("anchor_box") or record.get("made_box")  # records that say what was kept and made
    storage.write(join(output, REPORT, thumb), _jpeg(_thumbnail(storage.read(image_uri), tileable, outline=outline)))
    entry.update(thumb=thumb, curve=_curve(record), tiled=tileable)
    return entry


def _process_input(storage: Storage, output: str, uri: str, max_pixels: int) -> str:
    """An input's thumbnail; an input over the run's pixel cap (its task refused it) is never decoded."""
    name = f"inputs/{hashlib.sha256(uri.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}.jpg"
    storage.write(join(output, REPORT, name), _jpeg(_thumbnail(storage.read(uri), False, uri, max_pixels=max_pixels)))
    return name


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 24 else text[:21] + "..."


def _card(row: dict, entry: dict, varying: list[str], root: str, id_attr: str = "data-task-id") -> str:
    """One task; ``root`` leads from the page to the report folder. Preview cards on the index carry
    ``data-preview-id`` so that every task has exactly one ``data-task-id`` in the whole report."""
    params = json.loads(row["params"] or "{}")
    label = " · ".join([f"seed {row['seed']}", *(_input_names(row) if k == INPUTS else f"{k}={_short(params.get(k))}"
                                                  for k in varying)])
    title = html.escape(json.dumps(params, sort_keys=True))
    task = html.escape(row["task_id"])
    if row["status"] != "done":
        return (f'<figure class="card failed" {id_attr}="{task}" title="{title}"><div class="error">'
                f"failed: {html.escape(row['error'] or 'unknown error')}</div>"
                f"<figcaption>{html.escape(label)}</figcaption></figure>")
    loss = f"loss {row['loss_end']:.4g}" if row["loss_end"] is not None else ""
    secs = f"{row['seconds']:.1f} s" if row["seconds"] is not None else ""
    quality = row.get("quality")
    if quality is not None:  # tasks/quality.py: 0 like the exemplar, 1 like noise or a blank ground; above 1 worse
        secs += f' · <span class="quality" title="distance to the exemplar (lower is better); 1 = colour-matched noise or a blank ground">distance {quality:.2f}</span>'
    if row.get("colour_coverage") is not None:
        secs += f' · <span title="share of the exemplar\'s colours in the render">colours {row["colour_coverage"]:.0%}</span>'
    poor = " poor" if _poor(row) else ""
    tiled = ' <span class="tag">2x2 tiled</span>' if entry.get("tiled") else ""
    return (f'<figure class="card{poor}" {id_attr}="{task}" title="{title}">'
            f'<a href="{root}../{html.escape(row["job"])}/{html.escape(_file_name(row))}"><img loading="lazy" '
            f'src="{root}{html.escape(entry["thumb"])}" '
            f'alt="{html.escape(row["job"])} {task}"></a>'
            f"<figcaption>{html.escape(label)}{tiled}<br>{loss} · {secs}</figcaption>{_svg(entry.get('curve', []))}</figure>")


def _file_name(row: dict) -> str:
    """The task's image file in its job folder (the job's format decides the extension)."""
    return (row.get("output_uri") or f"{row['task_id']}.png").rsplit("/", 1)[-1]


INPUTS = " inputs"  # a pseudo-key of _varying: the tasks of a job differ by their input files


def _varying(rows: list[dict]) -> list[str]:
    """Parameters whose values differ between the tasks of a job (the sweep axes); INPUTS first when the
    tasks differ by their inputs too (a sweep over several exemplars must say which card is which)."""
    params = [json.loads(r["params"] or "{}") for r in rows]
    keys = sorted({key for p in params for key in p})
    inputs = [INPUTS] if len({r["inputs"] for r in rows}) > 1 else []
    return inputs + [key for key in keys if len({json.dumps(p.get(key), sort_keys=True) for p in params}) > 1]


def _input_names(row: dict) -> str:
    """The file names of a task's inputs, shortened: `pebbles.jpg`, `content.jpg + starry.jpg`."""
    uris = [uri for role in json.loads(row["inputs"] or "{}").values() for uri in role]
    return " + ".join(_short(readable(uri.rsplit("/", 1)[-1])) for uri in uris[:3]) + (" + ..." if len(uris) > 3 else "")


def _page_path(job: str, number: int) -> str:
    return f"jobs/{job}/{number}.html"  # relative to the report folder; job names are key-safe


def _job_summary(job: str, rows: list[dict], pages: int, root: str) -> str:
    done = [r for r in rows if r["status"] == "done"]
    secs = [r["seconds"] for r in done if r["seconds"] is not None]
    losses = [r["loss_end"] for r in done if r["loss_end"] is not None]
    median_s = f"{statistics.median(secs):.2f}" if secs else "-"
    median_loss = f"{statistics.median(losses):.4g}" if losses else "-"
    scores = [r["quality"] for r in done if r.get("quality") is not None]
    quality = (f"{statistics.median(scores):.2f} ({sum(map(_poor, done))} flagged)" if scores else "-")
    name = html.escape(job)
    links = " ".join(f'<a href="{root}{_page_path(name, n)}">{n}</a>' for n in range(1, pages + 1))
    return ('<table class="summary"><tr><th>kind</th><th>done</th><th>failed</th><th>median seconds</th>'
            '<th>median loss</th><th title="tasks/quality.py: 0 = like the exemplar, 1 = like colour-matched noise or a blank ground; '
            'above 1, or few of its colours: flagged">median distance to exemplar (lower is better)</th>'
            "<th>contact sheet</th><th>pages</th></tr>"
            f"<tr><td>{html.escape(rows[0]['kind'])}</td><td>{len(done)}</td><td>{len(rows) - len(done)}</td>"
            f'<td>{median_s}</td><td>{median_loss}</td><td>{quality}</td><td><a href="{root}{name}.png">{name}.png</a></td>'
            f'<td class="pages">{links}</td></tr></table>')


def _input_strip(rows: list[dict], state: _State) -> str:
    inputs: dict[str, list[str]] = {}
    for row in rows:
        for role, uris in json.loads(row["inputs"] or "{}").items():
            for uri in uris:
                inputs.setdefault(uri, [])
                if role not in inputs[uri]:
                    inputs[uri].append(role)
    strip = "".join(
        f'<figure class="input"><img src="{html.escape(state.inputs[uri])}" alt="input {html.escape(readable(uri))}">'
        f"<figcaption>{html.escape('/'.join(roles))}: {html.escape(readable(uri.rsplit('/', 1)[-1]))}</figcaption></figure>"
        for uri, roles in list(inputs.items())[:24] if uri in state.inputs)
    return f'<div class="inputs">{strip}</div>'


def _job_overview(job: str, rows: list[dict], state: _State, varying: list[str]) -> str:
    """The index's section of a job: counts, inputs, the first PREVIEW tasks and links to every page."""
    pages = math.ceil(len(rows) / PAGE_CARDS)
    preview = "".join(_card(r, state.tasks.get(r["task_id"], {}), varying, "", "data-preview-id")
                      for r in rows[:PREVIEW])
    more = (f'<p><a href="{_page_path(html.escape(job), 1)}">all {len(rows)} tasks</a>'
            f"{f' on {pages} pages' if pages > 1 else ''}</p>")
    return (f'<section id="job-{html.escape(job)}"><h2>{html.escape(job)}</h2>'
            f"{_job_summary(job, rows, pages, '')}{_input_strip(rows, state)}"
            f'<div class="grid">{preview}</div>{more}</section>')


def _job_page(job: str, rows: list[dict], number: int, state: _State, varying: list[str]) -> str:
    """Page ``number`` of a job: its slice of the tasks, as a sweep table when 1 or 2 parameters vary."""
    pages = math.ceil(len(rows) / PAGE_CARDS)
    first = (number - 1) * PAGE_CARDS
    page_rows = rows[first:first + PAGE_CARDS]
    root = "../../"
    cards = {r["task_id"]: _card(r, state.tasks.get(r["task_id"], {}), varying, root) for r in page_rows}
    body = _sweep_table(page_rows, varying, cards) if 1 <= len(varying) <= 2 else \
        '<div class="grid">' + "".join(cards[r["task_id"]] for r in page_rows) + "</div>"
    # Nothing job-wide on a page (counts, medians: they are on the index), so a page changes only when
    # its own tasks do, or when the job gets another page.
    links = " ".join(f'<a href="{root}{_page_path(html.escape(job), n)}">{n}</a>' if n != number else f"<b>{n}</b>"
                     for n in range(1, pages + 1))
    return (f'<section id="job-{html.escape(job)}"><p><a href="{root}index.html">all jobs</a> · pages {links}</p>'
            f"<h2>{html.escape(job)}: page {number} of {pages}, tasks {first + 1} to {first + len(page_rows)}"
            f"</h2>{body}</section>")


def _axis_order(text: str) -> tuple:
    """Numbers in numeric order (2 before 10), then everything else by its JSON text."""
    value = json.loads(text)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value, "")
    return (1, 0, text)


def _sweep_table(rows: list[dict], axes: list[str], cards: dict[str, str]) -> str:
    """One parameter per axis: rows for the first, columns for the second; seeds side by side. One pass
    over the rows (each row's params parsed once), so a 10,000-task sweep costs what 10,000 cards cost."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        params = json.loads(row["params"] or "{}")
        key = tuple(json.dumps(params.get(axis), sort_keys=True) for axis in axes)
        cells.setdefault(key if len(axes) == 2 else (key[0], None), []).append(row)
    row_values = sorted({key[0] for key in cells}, key=_axis_order)
    col_values = sorted({key[1] for key in cells}, key=_axis_order) if len(axes) == 2 else [None]
    head = f"<tr><th>{html.escape(axes[0])} \\ {html.escape(axes[1]) if len(axes) == 2 else ''}</th>" + "".join(
        f"<th>{html.escape(c) if c is not None else ''}</th>" for c in col_values) + "</tr>"
    lines = []
    for rv in row_values:
        tds = ["<td>" + "".join(cards[r["task_id"]] for r in cells.get((rv, cv), [])) + "</td>" for cv in col_values]
        lines.append(f"<tr><th>{html.escape(rv)}</th>{''.join(tds)}</tr>")
    return f'<table class="sweep">{head}{"".join(lines)}</table>'


def _contact_sheet(storage: Storage, output: str, rows: list[dict], state: _State) -> bytes:
    """The job's first SHEET_TILES tasks (catalog order): a bounded picture for a quick look, whatever the
    job's size (a full 10,000-task sheet was 1344 x 227,500 px, past PIL's own limits)."""
    rows = rows[:SHEET_TILES]
    columns = min(8, max(1, len(rows)))
    cell_w, cell_h = THUMB + 8, THUMB + 22
    sheet = Image.new("RGB", (columns * cell_w, math.ceil(len(rows) / columns) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for i, row in enumerate(rows):
        x, y = (i % columns) * cell_w + 4, (i // columns) * cell_h + 4
        entry = state.tasks.get(row["task_id"], {})
        if row["status"] == "done" and entry.get("thumb"):
            thumb = Image.open(io.BytesIO(storage.read(join(output, REPORT, entry["thumb"]))))
            sheet.paste(thumb, (x, y))
            loss = row.get("loss_end")  # None for kinds without a loss (generate, stylize)
            label = f"seed {row['seed']}" + (f" loss {loss:.3g}" if loss is not None else "")
        else:
            draw.rectangle([x, y, x + THUMB - 1, y + THUMB - 1], outline="red", width=3)
            label = f"seed {row['seed']} FAILED"
        draw.text((x, y + THUMB + 3), label, fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>texfarm report: {title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em;color:#222}} h2{{border-bottom:1px solid #ccc}}
.grid{{display:flex;flex-wrap:wrap;gap:10px}} .card,.input{{margin:0;width:{thumb}px;font-size:12px}}
.card img,.input img{{max-width:{thumb}px;max-height:{thumb}px;display:block;background:#eee}}
.failed .error{{width:{thumb}px;height:{thumb}px;overflow:auto;background:#fdecea;color:#a00;font-size:11px;padding:4px;box-sizing:border-box}}
.inputs{{display:flex;gap:10px;margin:.5em 0 1em}} .tag{{background:#def;padding:0 3px}}
table.summary td,table.summary th{{padding:2px 10px;text-align:left}} table.sweep td{{vertical-align:top}}
table.sweep td .card{{display:inline-block;margin-right:6px}} img.broken{{outline:3px solid red}}
.poor img{{outline:3px solid #e67e22}} .poor .quality{{color:#c0392b;font-weight:bold}}
</style></head><body>
<h1>texfarm report: {title}</h1>
<p>{intro}</p>
{sections}
<script>
// Self-check: mark images that did not load and count errors, so a broken page is visible.
const texfarmErrors = [];
addEventListener("error", (e) => texfarmErrors.push(String(e.message || (e.target && e.target.src))), true);
addEventListener("load", () => {{
  const images = Array.from(document.images);
  const broken = images.filter((i) => !i.complete || i.naturalWidth === 0);
  broken.forEach((i) => i.classList.add("broken"));
  document.body.dataset.images = images.length;
  document.body.dataset.broken = broken.length;
  document.body.dataset.errors = texfarmErrors.length;
}});
</script></body></html>
"""


def _sheet_signature(rows: list[dict], state: _State) -> str:
    """What a contact sheet shows: its tiles' tasks, states and labels; unchanged means no rebuild."""
    tiles = [(r["task_id"], r["status"], r["seed"], r.get("loss_end"), state.tasks.get(r["task_id"], {}).get("thumb"))
             for r in rows[:SHEET_TILES]]
    return hashlib.sha256(json.dumps(tiles, default=str).encode()).hexdigest()


def build_report(storage: Storage, output: str, name: Optional[str] = None,
                 max_input_pixels: Optional[int] = None) -> ReportSummary:
    """(Re)write the report for the catalog under ``output``: only new tasks are read and thumbnailed,
    and only pages and sheets whose content changed are written. ``max_input_pixels``: the run's
    `limits.max_input_pixels` (inputs over it get no thumbnail, as their tasks refused them)."""
    rows = catalog.read_rows(storage, output)
    if not rows:
        raise StorageError(f"no catalog and no task records under {output}: run the manifest first")
    state = _State(storage, output)
    fresh = [r for r in rows if state.tasks.get(r["task_id"], {}).get("status") != r["status"]]
    with ThreadPoolExecutor(storage.config.max_concurrency) as pool:
        for row, entry in zip(fresh, pool.map(lambda r: _process_task(storage, output, r), fresh)):
            state.tasks[row["task_id"]] = entry
        uris = {uri for r in rows for uris in json.loads(r["inputs"] or "{}").values() for uri in uris}
        new_uris = sorted(uris - set(state.inputs))

        def input_thumb(uri: str) -> Optional[str]:
            try:
                return _process_input(storage, output, uri, max_input_pixels or DEFAULT_MAX_PIXELS)
            except Exception:  # a missing or unreadable input just has no thumbnail
                return None

        for uri, thumb in zip(new_uris, pool.map(input_thumb, new_uris)):
            if thumb:
                state.inputs[uri] = thumb
    jobs: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: (r["job"], r["seed"] or 0, r["task_id"])):
        state.order.setdefault(row["task_id"], len(state.order))
        jobs.setdefault(row["job"], []).append(row)
    for job_rows in jobs.values():
        job_rows.sort(key=lambda r: state.order[r["task_id"]])
    sheets, written = [], []

    def put(path: str, data: bytes) -> None:
        digest = hashlib.sha256(data).hexdigest()
        if state.digests.get(path) != digest:  # state.json lives beside the pages: trusting it saves a HEAD each
            storage.write(join(output, REPORT, path), data)
            state.digests[path] = digest
            written.append(path)

    done = sum(r["status"] == "done" for r in rows)
    title = html.escape(name or output.rsplit("/", 1)[-1])
    sections = []
    for job, job_rows in jobs.items():
        signature = _sheet_signature(job_rows, state)
        if state.digests.get(f"{job}.png") != signature:
            storage.write(join(output, REPORT, f"{job}.png"), _contact_sheet(storage, output, job_rows, state))
            state.digests[f"{job}.png"] = signature
            sheets.append(join(output, REPORT, f"{job}.png"))
        varying = _varying(job_rows)
        sections.append(_job_overview(job, job_rows, state, varying))
        for number in range(1, math.ceil(len(job_rows) / PAGE_CARDS) + 1):
            page = PAGE.format(title=title, thumb=THUMB, intro="Click a thumbnail for the full image; hover for "
                               "its parameters.", sections=_job_page(job, job_rows, number, state, varying))
            put(_page_path(job, number), page.encode())
    intro = (f"{counted(len(rows), 'task')} in {counted(len(jobs), 'job')}: {done} done, {len(rows) - done} failed. Each job shows its "
             f"first {PREVIEW} tasks here; its pages show all of them, {PAGE_CARDS} a page.")
    put("index.html", PAGE.format(title=title, thumb=THUMB, intro=intro, sections="\n".join(sections)).encode())
    if state.dumps() != state.loaded:
        storage.write(state.uri, state.dumps())
    return ReportSummary(join(output, REPORT, "index.html"), len(rows), len(fresh), sheets, written)
