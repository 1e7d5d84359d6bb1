"""What ``mlp-lab sweep`` prints: the plan of a dry run, a line per finished run, and the
seed-grouped comparison with the closing lines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mlp_lab.errors import ConfigError, RunError


def sweep_from_cli(file: Path | None, overrides: list[str], jobs: int | None, threads: int | None, dry_run: bool,
                   resume: Path | None, runs_dir: Path, data_dir: Path | None, quiet: bool, yes: bool) -> int:
    from mlp_lab import sweeps as sw

    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: must be 1 or more")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads {threads}: must be 1 or more (or leave it out: the cores shared among the jobs)")
    if resume is not None:
        if file is not None or overrides or dry_run:
            raise ConfigError("--resume continues a sweep exactly as planned; it takes no sweep file, --set or --dry-run")
        folder = Path(resume)
        manifest = sw.load_manifest(folder)
        if not sw.to_do(manifest):
            raise RunError(f"{folder}: every run of this sweep has ended (completed or diverged); nothing to resume")
        # The threads it ran with, unless told otherwise: a run continued with another thread
        # count would not end with the metrics of one that was never stopped.
        before = manifest.data.get("workers") or {}
        jobs, threads = sw.default_workers(jobs if jobs is not None else before.get("jobs"),
                                           threads if threads is not None else before.get("threads"))
    else:
        if file is None:
            raise ConfigError("no sweep given: pass a sweep file (see configs/sweeps/), or --resume SWEEP_FOLDER")
        plan = sw.load_sweep(file, overrides, yes=yes)
        if dry_run:
            _print_plan(plan)
            return 0
        folder = sw.start_sweep(plan, runs_dir, data_dir).folder  # checks the data before writing anything
        jobs, threads = sw.default_workers(jobs, threads)
        _out(f"sweep {plan.name}: {len(plan.runs)} runs ({len(plan.cells)} cells x "
             f"{len(plan.spec.seed_list())} seeds), {jobs} at a time with {threads} thread{'s' if threads > 1 else ''} "
             f"each; folder: {folder}")
    report = None if quiet else (lambda entry, finished, total: _report_line(folder, entry, finished, total))
    outcome = sw.run_sweep(folder, jobs=jobs, threads=threads, data_dir=data_dir, report=report)
    return _close(folder, outcome)


def _out(line: str) -> None:
    print(line, flush=True)


def _print_plan(plan: Any) -> None:
    keys = list(dict.fromkeys(k for r in plan.runs for k in r.varies))
    head = ["#", "cell", "seed", *keys]
    rows = [[str(r.index + 1), r.cell, str(r.seed), *(str(r.varies.get(k, "")) for k in keys)] for r in plan.runs]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for line in [head, *rows]:
        _out("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    _out(f"{len(plan.runs)} runs: {len(plan.cells)} cells x {len(plan.spec.seed_list())} seeds (dry run: nothing ran)")


def _report_line(folder: Path, entry: dict[str, Any], finished: int, total: int) -> None:
    """One line per finished run: how many have ended, how this one did."""
    from mlp_lab import runs

    text = f"[{finished}/{total}] {entry['status']} {entry['folder'] or '-'} (cell {entry['cell']}, seed {entry['seed']})"
    if entry["status"] == "completed" and entry["folder"]:
        final = (runs.load_run(folder / entry["folder"]).summary or {}).get("final") or {}
        if "test_acc" in final:
            text += f": test acc {100 * final['test_acc']:.2f}% in {entry.get('seconds', 0):.1f}s"
    if entry.get("reason"):
        text += f": {entry['reason']}"
    _out(text)


def _close(folder: Path, outcome: Any) -> int:
    from mlp_lab import results

    counts = outcome.counts
    try:
        comp = results.build_comparison([folder])
        if comp.rows:
            _out(results.to_table(comp, width=200).rstrip())
    except results.CompareError:
        pass  # no run ended yet: nothing to compare
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if outcome.stopped:
        print(f"sweep stopped ({parts}); continue with: mlp-lab sweep --resume {folder}", file=sys.stderr, flush=True)
        return 130
    bad = {k: v for k, v in counts.items() if k not in ("completed",)}
    _out(f"sweep {folder.name}: {parts}")
    if bad:
        print(f"not every run completed ({', '.join(f'{n} {s}' for s, n in bad.items())}): see the manifest in {folder}",
              file=sys.stderr, flush=True)
        return 1
    return 0
