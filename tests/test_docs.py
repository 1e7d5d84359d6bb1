"""The documentation stays true: references generated from the code and current, every
command of the tutorial and the tuning guide runs, the site builds with --strict, and no
page names a path that only exists on the machine that wrote it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import figures
import gen_reference
import pytest

from mlp_lab.config import config_to_dict
from mlp_lab.keys import flatten
from mlp_lab.schema import VARIANTS, ExperimentConfig

from fakedata import make_idx_dataset

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def test_the_references_are_generated_from_the_code_and_current(capsys):
    assert gen_reference.main(["--check"]) == 0, capsys.readouterr().err


def test_the_config_reference_lists_every_key_and_every_choice():
    text = (DOCS / "reference" / "config.md").read_text()
    keys = set(flatten(config_to_dict(ExperimentConfig())))
    keys |= {
        f"{section}.{f}"
        for section, variants in VARIANTS.items()
        for cls in variants.values()
        for f in cls.model_fields
    }
    keys |= {f"train.early_stopping.{f}" for f in ("metric", "patience", "min_delta")}
    missing = sorted(k for k in keys if f"`{k}`" not in text)
    assert not missing, f"docs/reference/config.md lacks {missing}"
    for choice in ("relu", "kaiming_normal", "batchnorm", "cifar10", "bf16", "val_loss", "rmsprop", "cosine"):
        assert f"`{choice}`" in text, choice


def test_the_command_reference_has_every_command():
    text = (DOCS / "reference" / "cli.md").read_text()
    commands = ("train", "resume", "compare", "show", "sweep", "refine", "confirm", "check", "inspect", "report")
    for command in (*commands, "configs", "schema"):
        assert f"## `mlp-lab {command}`" in text, command
    assert "`--search`" in text and "`--top`" in text


def test_the_readme_is_short_and_no_page_names_a_local_path():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    outputs = sorted((DOCS / "_generated").rglob("*.txt"))
    for path in [REPO / "README.md", REPO / "ARCHITECTURE.md", REPO / "mkdocs.yml", *PAGES, *outputs]:
        text = path.read_text()
        for local in ("../shared", "/work/", "/tmp/"):
            assert local not in text, f"{path.relative_to(REPO)} names {local}"


def test_every_block_the_pages_run_has_its_output_and_every_picture_exists():
    for page in figures.PAGES:
        found = figures.blocks(page)
        assert found, page
        for block in found:
            assert block.commands, (page, block.name)
            assert block.output.is_file(), f"{block.output}: run python docs/figures.py --data-dir DATA"
            assert f'--8<-- "_generated/{Path(page).stem}/{block.name}.txt"' in (DOCS / page).read_text()
    for page in PAGES:
        for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / image).resolve().is_file(), f"{page.relative_to(REPO)}: {image} is missing"
    readme = (REPO / "README.md").read_text()
    for link in re.findall(r"\]\(((?:docs/|ARCHITECTURE)[^)#]*)", readme):
        assert (REPO / link).is_file(), f"README links to {link}, which is not there"


@pytest.mark.integration
def test_every_command_of_the_tutorial_and_the_tuning_guide_runs(tmp_path):
    """The blocks run as docs/figures.py runs them: real MNIST where MLP_LAB_SHARED_DATA has
    it, else small MNIST-format files (the commands must run; the numbers are the real data's)."""
    shared = os.environ.get("MLP_LAB_SHARED_DATA")
    if shared and (Path(shared) / "MNIST" / "raw").is_dir():
        data = Path(shared)
    else:
        data = tmp_path / "data"
        make_idx_dataset(data, n_train=1000, n_test=200)
    env = figures.environment(data) | {"MLP_LAB_OFFLINE": "1"}
    for page in figures.PAGES:
        work = tmp_path / Path(page).stem
        work.mkdir()
        for block in figures.blocks(page):
            code, printed = figures.run_block(block, work, env)
            assert "Traceback" not in printed, printed
            # 1 is a run that diverged or a check that failed (small random data can do
            # that); 2 would be a command or flag the page has wrong.
            assert code in (*block.exits, 1), f"{page}: {block.name} exited {code}:\n{printed}"


def test_the_site_builds_with_strict(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for page in ("index.html", "tutorial/lecture/index.html", "reference/config/index.html", "api/index.html"):
        assert (tmp_path / "site" / page).is_file(), page
    assert (
        "train_experiment" in (tmp_path / "site" / "api" / "index.html").read_text()
        or "load_runs" in (tmp_path / "site" / "api" / "index.html").read_text()
    )
