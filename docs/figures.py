"""Run the commands of the tutorial and the guides, and keep what they print and draw.

A page marks each block of commands it wants run with an HTML comment just before it::

    <!-- run: search, from: "top trials", head: 8, exit: 0 1 -->
    ```console
    $ mlp-lab sweep --config relu_adam --search optimizer.lr=log_uniform:1e-4:1e-1 --trials 12
    ```

``python docs/figures.py --data-dir DATA`` runs every marked block of PAGES in order, each
page in a fresh folder (build/docs-work/<page>/), with the real data sets in DATA, and writes
what the block printed to ``docs/_generated/<page>/<name>.txt`` (without ``--quiet``'s line
per finished run; from the first line containing ``from``, then its first ``head`` or last
``tail`` lines),
which the page includes, and every figure the block drew to ``docs/img/``. So each table,
number and picture in the docs came from running the command shown beside it. The test
suite runs the same blocks (tests/test_docs.py) on small data, so a renamed command or flag
fails the build, not a reader.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
PAGES = ["tutorial/lecture.md", "guides/tuning.md"]
GENERATED = DOCS / "_generated"
IMAGES = DOCS / "img"

_MARK = re.compile(r"<!--\s*run:\s*(?P<name>[\w-]+)(?P<opts>[^>]*)-->\s*\n```console\n(?P<body>.*?)\n```", re.S)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROGRESS = re.compile(r"^\[\d+/\d+\] ")


@dataclass(frozen=True)
class Block:
    page: str
    name: str
    commands: list[str]
    tail: int
    exits: tuple[int, ...]  # the exit codes the block may end with (0 = all went well)
    head: int = 0
    start: str = ""  # keep the output from the first line holding this

    def shown(self, printed: str) -> str:
        """The part of ``printed`` the page shows."""
        lines = [line for line in printed.rstrip("\n").splitlines() if not _PROGRESS.match(line)]
        if self.start:
            lines = lines[next((i for i, line in enumerate(lines) if self.start in line), 0) :]
        if self.head:
            lines = lines[: self.head]
        if self.tail:
            lines = lines[-self.tail :]
        return "\n".join(lines) + "\n"

    @property
    def output(self) -> Path:
        return GENERATED / Path(self.page).stem / f"{self.name}.txt"


def blocks(page: str) -> list[Block]:
    """The marked blocks of a page, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    out = []
    for m in _MARK.finditer(text):
        opts = dict(re.findall(r'(\w+):\s*("[^"]*"|[\d ]+)', m.group("opts")))
        commands = [line[2:] for line in m.group("body").splitlines() if line.startswith("$ ")]
        exits = tuple(int(x) for x in opts.get("exit", "0").split())
        number = {k: int(opts.get(k, "0")) for k in ("tail", "head")}
        start = opts.get("from", "").strip('"')
        out.append(Block(page, m.group("name"), commands, number["tail"], exits, number["head"], start))
    return out


def environment(data_dir: Path | None) -> dict[str, str]:
    """The commands run as a user's would: mlp-lab on the PATH (this Python's), the data set."""
    env = dict(os.environ, COLUMNS="120", PYTHONUNBUFFERED="1")  # a page's width, as a terminal would have
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if data_dir is not None:
        env["MLP_LAB_DATA"] = str(Path(data_dir).resolve())
    return env


def run_block(block: Block, work: Path, env: dict[str, str], timeout: float = 900) -> tuple[int, str]:
    """Run a block's commands one after another in ``work`` (stopping at the first that
    ends with an exit code the block does not allow); (the last exit code, what was printed)."""
    printed, code = [], 0
    for command in block.commands:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # interleaved, as a terminal shows them
            text=True,
            timeout=timeout,
        )
        code = proc.returncode
        printed.append(_ANSI.sub("", proc.stdout))
        if code not in block.exits:
            break
    # Paths as a reader's machine would print them: no trace of this checkout's location.
    text = "".join(printed).replace(str(work) + os.sep, "").replace(str(REPO), "<mlp-lab>")
    return code, text.replace(env["MLP_LAB_DATA"], "DATA") if env.get("MLP_LAB_DATA") else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the real data sets (torchvision's layout)")
    parser.add_argument("--pages", nargs="*", default=PAGES)
    args = parser.parse_args(argv)
    env = environment(args.data_dir)
    for page in args.pages:
        work = REPO / "build" / "docs-work" / Path(page).stem
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for block in blocks(page):
            before = set(work.glob("*.png"))
            code, printed = run_block(block, work, env)
            if code not in block.exits:
                print(printed, file=sys.stderr)
                print(f"{page}: block {block.name} exited {code}", file=sys.stderr)
                return 1
            block.output.parent.mkdir(parents=True, exist_ok=True)
            block.output.write_text(block.shown(printed), encoding="utf-8")
            for png in sorted(set(work.glob("*.png")) - before):
                shutil.copy(png, IMAGES / png.name)
            print(f"{page}: {block.name} ({code})")
        stamp = GENERATED / Path(page).stem / "when.txt"
        stamp.write_text(f"{date.today().isoformat()}, {_machine()}\n", encoding="utf-8")
    return 0


def _machine() -> str:
    import platform

    import torch

    cores = os.cpu_count()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({cores} cores)"
    return f"torch {torch.__version__} on {device}, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
