"""What ``mlp-lab sweep`` prints: the plan of a dry run, a line per finished run, and the
seed-grouped comparison with the closing lines."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from mlp_lab.errors import ConfigError, RunError
from mlp_lab.sweeps.spec import SearchOptions
from mlp_lab.sweeps.views import LineView, LiveView, TensorBoardView, without_run_hint


def sweep_from_cli(
    file: Path | None,
    overrides: list[str],
    jobs: int | None,
    threads: int | None,
    dry_run: bool,
    resume: Path | None,
    runs_dir: Path,
    data_dir: Path | None,
    quiet: bool,
    yes: bool,
    backend: str | None = None,
    address: str | None = None,
    shorthand: tuple[Path | None, list[str], str | None] = (None, [], None),
    search: SearchOptions | None = None,
    tensorboard: Path | None = None,
) -> int:
    """``mlp-lab sweep``: plan (from a file, or --config/--grid/--seeds), run, print; the exit code.
    ``resume``: the older spelling of ``mlp-lab resume SWEEP_FOLDER`` (``resume_from_cli``)."""
    if resume is not None:
        if file is not None or overrides or dry_run or shorthand[0] is not None:
            raise ConfigError(
                "--resume continues a sweep exactly as planned; it takes no sweep file, --set or --dry-run"
            )
        return resume_from_cli(resume, jobs, threads, backend, address, data_dir, quiet, tensorboard)
    _check_run_options(jobs, threads, backend, address, tensorboard)
    plan = _plan(file, overrides, shorthand, yes, search)
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    if dry_run:
        _print_plan(plan)
        return 0
    folder, outcome = _run(
        plan, None, backend or "local", address, jobs, threads, runs_dir, data_dir, quiet, tensorboard
    )
    return _close(folder, outcome)


def resume_from_cli(
    folder: Path,
    jobs: int | None,
    threads: int | None,
    backend: str | None,
    address: str | None,
    data_dir: Path | None,
    quiet: bool,
    tensorboard: Path | None,
) -> int:
    """``mlp-lab resume SWEEP_FOLDER``: run exactly the runs that did not end, with the
    sweep's own backend, jobs, threads and data unless told otherwise; the exit code."""
    from mlp_lab import sweeps as sw

    _check_run_options(jobs, threads, backend, None, tensorboard)
    folder = Path(folder)
    manifest = sw.load_manifest(folder)
    if not sw.to_do(manifest):
        raise RunError(f"{folder}: every run of this sweep has ended (completed or diverged); nothing to resume")
    backend, jobs, threads, data_dir = sw.resume_settings(manifest, jobs, threads, backend, data_dir)
    folder, outcome = _run(None, folder, backend, address, jobs, threads, folder.parent, data_dir, quiet, tensorboard)
    return _close(folder, outcome)


def refine_from_cli(search_folder: Path, top: int, trials: int | None, **sweep_options: Any) -> int:
    """``mlp-lab refine SEARCH_FOLDER``: write the narrowed search next to the old one, say
    each range's change, then run it as ``mlp-lab sweep`` runs a file (``sweep_options``)."""
    options = {k: sweep_options.get(k) for k in ("jobs", "threads", "backend", "address", "tensorboard")}
    _check_run_options(**options)  # a bad one: before the refined search is written
    return sweep_from_cli(refined_file(search_folder, top, trials), **sweep_options)


def refined_file(search_folder: Path, top: int, trials: int | None) -> Path:
    """The refined search's sweep file (``sweeps.refine``), its ranges printed."""
    from mlp_lab.sweeps.refine import refine

    file, lines = refine(Path(search_folder), top=top, trials=trials)
    for line in lines:
        _out(line)
    _out(f"wrote {file} (and its base config beside it): the refined search as a file")
    return file


def _check_run_options(
    jobs: int | None, threads: int | None, backend: str | None, address: str | None, tensorboard: Path | None
) -> None:
    """The options of how runs run: one line for a bad one, before anything is written."""
    from mlp_lab import sweeps as sw

    sw.default_workers(jobs, threads, backend or "local")  # a bad count or backend: before anything else
    if tensorboard is not None:
        from mlp_lab.export import require_tensorboard

        require_tensorboard(tensorboard)  # a missing extra, or no folder to write in: before any folder is made
    if address is not None and backend != "ray":
        raise ConfigError(f"--address {address}: a Ray cluster's address; it goes with --backend ray")


def confirm_from_cli(
    search_folder: Path,
    top: int,
    seeds: int,
    jobs: int | None,
    threads: int | None,
    runs_dir: Path,
    data_dir: Path | None,
    quiet: bool,
) -> int:
    """``mlp-lab confirm``: the search's top trials on fresh seeds, then whether the winner stays ahead."""
    from mlp_lab import results
    from mlp_lab import sweeps as sw
    from mlp_lab.sweeps.confirm import judge, plan_confirmation

    sw.default_workers(jobs, threads)  # a bad --jobs or --threads: before the confirmation is planned
    confirmation = plan_confirmation(Path(search_folder), top, seeds)
    for line in confirmation.lines():
        _out(line)
    plan = sw.load_sweep(confirmation.file, [])
    folder, outcome = _run(plan, None, "local", None, jobs, threads, runs_dir, data_dir, quiet, None)
    code = _close(folder, outcome, compare=False)
    if not outcome.stopped and outcome.counts.get("completed"):
        comp, lines = judge(confirmation, folder)  # the winner as the baseline, as the verdict reads it
        _out(results.to_table(comp, width=results.table_width()).rstrip())
        for line in lines:  # the verdict last: what the user came for
            _out(line)
    return code


def _run(
    plan: Any,
    resume: Path | None,
    backend: str,
    address: str | None,
    jobs: int | None,
    threads: int | None,
    runs_dir: Path,
    data_dir: Path | None,
    quiet: bool,
    tensorboard: Path | None,
) -> tuple[Path, Any]:
    """Start ``plan`` in a new sweep folder (or continue the folder ``resume``) and run it:
    (the folder, the outcome)."""
    from mlp_lab import sweeps as sw

    # Ray is joined (or started) before the sweep folder is made: a missing extra or an
    # address that does not answer leaves nothing written.
    with _session(backend, address):
        if resume is None:
            jobs, threads = sw.default_workers(jobs, threads, backend)
            if backend == "ray":
                from mlp_lab.sweeps.ray_backend import check_cluster

                check_cluster([r.config for r in plan.runs], threads)
            folder = sw.start_sweep(plan, runs_dir, data_dir).folder  # checks the data before writing anything
            at_once = f"{jobs} at a time" if jobs is not None else "as many at a time as the cluster's CPUs allow"
            size = _size(plan) if plan.spec.search is None else _search_size(plan)
            _out(
                f"sweep {plan.name}: {size} on {backend}, {at_once} with {_n(threads, 'thread')} each; folder: {folder}"
            )
        else:
            folder = Path(resume)
        watch: LineView | TensorBoardView = LiveView(folder) if not quiet and sys.stderr.isatty() else LineView(folder)
        if tensorboard is not None:
            watch = TensorBoardView(watch, folder, tensorboard)
        with watch:
            outcome = sw.run_sweep(
                folder, jobs=jobs, threads=threads, data_dir=data_dir, watch=watch, backend=backend, address=address
            )
    return folder, outcome


def _session(backend: str, address: str | None) -> Any:
    if backend != "ray":
        return nullcontext()
    from mlp_lab.sweeps.ray_backend import ray_session

    return ray_session(address)


def _plan(file: Path | None, overrides: list[str], shorthand: Any, yes: bool, search: SearchOptions | None) -> Any:
    """The sweep from a file, or from --config/--grid/--search/--seeds (the shorthand)."""
    from mlp_lab import sweeps as sw

    config, grid, seeds = shorthand
    searching = search is not None and bool(search.space)
    if config is None and (grid or seeds is not None or searching):
        raise ConfigError(
            "--grid, --search and --seeds are the shorthand's: give them with --config BASE.yaml (or write a sweep file)"
        )
    if search is not None and not searching and (search.method or search.prune or search.trials is not None):
        raise ConfigError(
            "--trials, --method and --prune shape a search: give them with --search key.path=kind:args "
            "(or --trials with mlp-lab refine)"
        )
    if file is not None and config is not None:
        raise ConfigError("give a sweep file or --config with --grid/--search/--seeds, not both")
    if config is not None:
        return sw.sweep_from_options(config, grid, seeds, overrides=overrides, yes=yes, search=search)
    if file is None:
        raise ConfigError(
            "no sweep given: pass a sweep file (see configs/sweeps/), --config BASE.yaml with --grid "
            "and/or --seeds (to continue a sweep: mlp-lab resume SWEEP_FOLDER)"
        )
    return sw.load_sweep(file, overrides, yes=yes)


def _out(line: str) -> None:
    print(line, flush=True)


def _search_size(plan: Any) -> str:
    search = plan.spec.search
    return (
        f"a {search.method} search of {_n(search.trials, 'trial')} x {_n(len(plan.spec.seed_list()), 'seed')} "
        f"on {search.metric}, pruning: {search.prune.rule}"
    )


def _print_search_plan(plan: Any) -> None:
    search = plan.spec.search
    for key, dist in search.space.items():
        ((kind, args),) = dist.items()
        _out(f"{key}: {kind} {args}")
    if search.method == "random":
        keys = list(search.space)
        head = ["trial", *keys]
        rows = [
            [str(r.trial), *(_cell(r.varies[k]) for k in keys)] for r in plan.runs if r.seed == plan.spec.seed_list()[0]
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *rows)]
        for line in [head, *rows]:
            _out("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    else:
        _out("(tpe asks each trial once earlier ones have ended: the values are not known before)")
    _out(f"{_search_size(plan)} (dry run: nothing ran)")


def _cell(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _print_plan(plan: Any) -> None:
    if plan.spec.search is not None:
        return _print_search_plan(plan)
    keys = list(dict.fromkeys(k for r in plan.runs for k in r.varies))
    head = ["#", "cell", "seed", *keys]
    rows = [[str(r.index + 1), r.cell, str(r.seed), *(str(r.varies.get(k, "")) for k in keys)] for r in plan.runs]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    for line in [head, *rows]:
        _out("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip())
    _out(f"{_n(len(plan.runs), 'run')}: {_parts(plan)} (dry run: nothing ran)")


def _n(n: int, word: str) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _parts(plan: Any) -> str:
    """'4 cells x 3 seeds'."""
    return f"{_n(len(plan.cells), 'cell')} x {_n(len(plan.spec.seed_list()), 'seed')}"


def _size(plan: Any) -> str:
    """'12 runs (4 cells x 3 seeds)'."""
    return f"{_n(len(plan.runs), 'run')} ({_parts(plan)})"


def _print_comparison(folder: Path) -> None:
    from mlp_lab import results, runs

    try:  # a search is compared on what it selected on: never on the test set
        comp = results.build_comparison([folder], sort=runs.compared_on([folder]))
        if comp.rows:
            _out(results.to_table(comp, width=results.table_width()).rstrip())
    except results.CompareError:
        pass  # no run ended yet: nothing to compare


def _close(folder: Path, outcome: Any, compare: bool = True) -> int:
    from mlp_lab.sweeps.folder import load_manifest

    counts = outcome.counts
    manifest = load_manifest(folder)
    if "search" in manifest.data:
        from mlp_lab.sweeps.search_runner import BEST, search_summary

        for line in search_summary(manifest):
            _out(line)
        if (folder / BEST).exists():
            _out(
                f"best config: {folder / BEST} (is it ahead beyond noise? mlp-lab confirm {folder}; "
                "read its test accuracy once, at the end)"
            )
    if compare:
        _print_comparison(folder)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if outcome.disk_full:
        print(
            f"sweep stopped starting runs: the disk is full ({without_run_hint(outcome.disk_full)}); {parts}. "
            f"Free some space, then "
            f"continue with: mlp-lab resume {folder}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    if outcome.stopped:
        print(f"sweep stopped ({parts}); continue with: mlp-lab resume {folder}", file=sys.stderr, flush=True)
        return 130
    bad = {k: v for k, v in counts.items() if k not in ("completed", "pruned")}  # pruning is the search's own doing
    _out(f"sweep {folder.name}: {parts}")
    if bad:
        print(
            f"not every run completed ({', '.join(f'{n} {s}' for s, n in bad.items())}): see the manifest in {folder}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0
