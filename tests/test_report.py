"""mlp-lab report: one self-contained HTML page, checked as text and in a real browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from mlp_lab import atomic_files, runs
from mlp_lab.report import render_report, write_report
from mlp_lab.results import build_comparison

from helpers import SWEEP_TINY, write_yaml
from test_compare import PNG_MAGIC, invoke, make_run
from test_seed_groups import HE, HE_ACCS, XAVIER, XAVIER_ACCS, seeded


@pytest.fixture
def lecture_like(tmp_path):
    """Two seed groups, and a single run that diverged with a warning."""
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "xavier", XAVIER, XAVIER_ACCS)
    bad = make_run(root, "large", {"model": {"init": "normal", "init_std": 1.0}}, accs=[0.1], status="diverged")
    summary = json.loads((bad / runs.SUMMARY).read_text())
    summary.update(
        message="diverged in epoch 2: training loss became nan",
        warnings=["layer 3's relu activations have std 7.5e+02"],
    )
    atomic_files.atomic_write_json(bad / runs.SUMMARY, summary)
    return root


class _Page(HTMLParser):
    """What a page refers to outside itself, its images, and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.images: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("src", "href"):
            if attrs.get(key) and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("script", "link", "iframe", "object"):
            self.scripts += 1

    def handle_data(self, data):
        self.text.append(data)


def test_the_page_is_self_contained_and_holds_the_comparison(lecture_like, tmp_path):
    out = write_report([lecture_like], tmp_path / "report.html", title="Inits, 5 seeds")
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    assert page.external == [] and page.scripts == 0  # no network, no CDN, nothing to load
    assert len(page.images) == 1  # the curves (these runs have no diagnostics)
    png = base64.b64decode(page.images[0].removeprefix("data:image/png;base64,"))
    assert png.startswith(PNG_MAGIC) and len(png) > 10_000
    text = " ".join(page.text)
    assert "Inits, 5 seeds" in text and "11 runs in 3 groups of runs that differ only in their seed" in text
    assert "he 97.95 ± 0.06% (n=5) is ahead of xavier 97.62 ± 0.07% (n=5) by 0.33 pp" in text  # the verdict
    assert "97.95 ± 0.06%" in text and "[97.87, 98.02]" in text and "baseline" in text
    assert "model.init: normal" in text and "model.init_std: 1" in text  # what a row changes from the defaults
    assert "diverged in epoch 2" in text and "std 7.5e+02" in text  # what its runs recorded
    assert "seed 4" in text


def test_the_page_keeps_compares_note_when_the_best_is_chosen_on_test(lecture_like, tmp_path):
    # These runs have no validation split: compare says its pick is made on test, and so must the page.
    text = " ".join(_text(write_report([lecture_like], tmp_path / "test.html")))
    assert "chosen on test: these runs have no validation split" in text
    validated = tmp_path / "validated"
    for name, lr in (("a", 0.001), ("b", 0.01)):
        make_run(validated, name, {"optimizer": {"lr": lr}}, val=True)
    assert "chosen on test" not in " ".join(_text(write_report([validated], tmp_path / "val.html")))


def _text(path) -> list[str]:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page.text


def test_diagnostics_figures_are_included_when_runs_have_them(tmp_path):
    from test_diagnostics import train

    _, run_dir = train(tmp_path, name="with-diagnostics")
    html = render_report(build_comparison([run_dir]), "t")
    assert html.count("<img") == 2 and "Inside the network" in html


@pytest.mark.parametrize(
    "args, message",
    [
        (["-o", "report.txt"], "give a name ending in .html"),
        (["-o", "missing/report.html"], "folder missing does not exist"),
        (["--baseline", "model.init=orthogonal"], "no group of runs has that"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(lecture_like, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    r = invoke("report", str(lecture_like), *args)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.html")) and not list(tmp_path.glob("*.txt"))


def test_cli_writes_the_page(lecture_like, tmp_path):
    r = invoke("report", str(lecture_like), "-o", str(tmp_path / "r.html"), "--baseline", "model.init=xavier_normal")
    assert r.exit_code == 0, r.output
    assert f"wrote {tmp_path / 'r.html'}" in r.stderr
    assert "by 0.33 pp" in (tmp_path / "r.html").read_text(encoding="utf-8")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# The flags a headless Chromium needs on a machine without network or display.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
]


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian's chromium package; .ci/run installs it)")
def test_a_real_browser_shows_the_table_and_decodes_every_image(lecture_like, tmp_path):
    out = write_report([lecture_like], tmp_path / "report.html", title="Inits, 5 seeds")
    # A copy with a probe: once loaded, the page's title becomes what the browser decoded.
    probe = (
        "<script>window.addEventListener('load', () => { document.title = 'PROBE' + JSON.stringify({"
        "widths: [...document.images].map(i => i.naturalWidth),"
        "cells: [...document.querySelectorAll('td')].map(td => td.textContent)}); });</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    profile = ["--user-data-dir=" + str(tmp_path / "profile")]
    dom = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, *profile, "--dump-dom", probed.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert found, dom[:500]
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["widths"] and all(w > 0 for w in seen["widths"])
    assert {"he", "xavier", "97.95 ± 0.06%", "[97.87, 98.02]", "baseline"} <= set(seen["cells"])
    shot = tmp_path / "report.png"  # kept with the test's files, to look at
    subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, *profile, "--window-size=1280,1600", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.read_bytes().startswith(PNG_MAGIC) and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")


def test_a_sweep_folder_brings_its_sweep_file(tmp_path):
    write_yaml(tmp_path / "tiny.yaml", SWEEP_TINY)
    write_yaml(tmp_path / "s.yaml", {"base": "tiny.yaml", "grid": {"model.activation": ["relu", "tanh"]}})
    r = invoke("sweep", str(tmp_path / "s.yaml"), "--runs-dir", str(tmp_path / "runs"), "--quiet")
    assert r.exit_code == 0, r.output
    (folder,) = (tmp_path / "runs").iterdir()
    out = write_report([folder], tmp_path / "sweep.html")
    text = out.read_text(encoding="utf-8")
    assert f"Sweep file of {folder.name}" in text and "model.activation:" in text and "- tanh" in text
    # report runs/: a folder holding sweep folders brings each one's file too
    text = write_report([tmp_path / "runs"], tmp_path / "all.html").read_text(encoding="utf-8")
    assert f"Sweep file of {folder.name}" in text


@pytest.fixture
def wide(tmp_path):
    """Three seed groups of one-epoch runs that differ in eight fields, with long values."""
    import mlp_lab

    base = {
        "name": "r",
        "data": {"dataset": "synthetic", "synthetic_train_size": 200, "synthetic_test_size": 50},
        "train": {"epochs": 1, "batch_size": 50, "device": "cpu"},
    }
    variants = [
        {
            "model.activation": "relu",
            "model.init": "kaiming_normal",
            "model.hidden": [64, 64, 64, 64],
            "optimizer.name": "sgd",
            "optimizer.lr": 0.1,
            "model.norm": "batchnorm",
            "model.dropout": 0.1,
            "train.batch_size": 50,
        },
        {
            "model.activation": "tanh",
            "model.init": "xavier_normal",
            "model.hidden": [32, 32],
            "optimizer.name": "adam",
            "optimizer.lr": 0.001,
            "model.norm": "none",
            "model.dropout": 0.0,
            "train.batch_size": 25,
        },
        {
            "model.activation": "leaky_relu",
            "model.init": "normal",
            "model.hidden": [128],
            "optimizer.name": "rmsprop",
            "optimizer.lr": 0.0005,
            "model.norm": "layernorm",
            "model.dropout": 0.2,
            "train.batch_size": 40,
        },
    ]
    for v in variants:
        for seed in (0, 1):
            mlp_lab.train(base, {**v, "train.seed": seed}, runs_dir=tmp_path / "runs")
    return tmp_path / "runs"


def test_one_epoch_runs_get_bars_of_their_final_values(wide, tmp_path):
    from mlp_lab.plots import comparison_figure

    comp = build_comparison([wide])
    fig = comparison_figure([[r.history for r in runs_of_row(row)] for row in comp.rows], ["a", "b", "c"])
    acc_ax, loss_ax = fig.axes[:2]
    assert len(acc_ax.patches) == 3 and len(loss_ax.patches) == 3  # a bar per row in both panels
    assert "1 epoch" in fig._suptitle.get_text()


def runs_of_row(row):
    from mlp_lab.results import runs_of

    return runs_of(row)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium here (Debian's chromium package; .ci/run installs it)")
@pytest.mark.parametrize("width", [1280, 1400])
def test_the_table_fits_a_laptop_window(wide, tmp_path, width):
    out = write_report([wide], tmp_path / "report.html")
    probe = (
        "<script>window.addEventListener('load', () => { document.title = 'PROBE' + JSON.stringify({"
        "view: document.documentElement.clientWidth,"
        "right: Math.max(...[...document.querySelectorAll('th, td')].map(c => c.getBoundingClientRect().right)),"
        "headers: [...document.querySelectorAll('th')].map(th => th.textContent)}); });</script>"
    )
    probed = tmp_path / "probed.html"
    probed.write_text(out.read_text(encoding="utf-8").replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [
            _chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},900",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert found, dom[:500]
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert seen["view"] <= width and seen["right"] <= seen["view"], seen  # every cell inside the window
    assert {"test_acc", "vs baseline"} <= set(seen["headers"]) and len(seen["headers"]) >= 19
