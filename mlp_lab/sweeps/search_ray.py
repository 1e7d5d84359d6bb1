"""A search on the Ray backend: each trial a Ray task (``ray_backend.train_task``), its
epochs' metrics posted to the driver, which tells the pruner; a trial the pruner stops is
cancelled (``ray.cancel``: SIGINT in the task, so it ends with every epoch it finished and
its files come back) and recorded ``pruned`` exactly as on the local backend."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlp_lab.sweeps.folder import DONE, Manifest
from mlp_lab.sweeps.local import Outcome, outcome_of, to_do
from mlp_lab.sweeps.ray_backend import check_cluster, ray_session, record, relay, tasks
from mlp_lab.sweeps.search_runner import (
    _tell_if_ended, ask_next, mark_pruned, rebuild, to_ask, write_best,
)
from mlp_lab.sweeps.watch import Watch

POLL_S = 0.3


def run_ray_search(manifest: Manifest, jobs: int | None, threads: int, data_dir: Path | None,
                   address: str | None = None, watch: Watch | None = None) -> Outcome:
    from mlp_lab.config import config_from_dict, validate_config
    from mlp_lab.signals import stop_on_signals

    watch = watch or Watch()
    with ray_session(address) as ray:
        base = validate_config(manifest.data["search"]["base"])
        check_cluster([base], threads)
        # At most the cluster's CPUs at once (TPE learns only from trials that ended).
        jobs = jobs or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        submit, board = tasks(ray, [base], threads, data_dir)
        s = rebuild(manifest)
        queue, in_flight, started = to_do(manifest), {}, {}
        pruning: set[int] = set()
        with stop_on_signals() as stop:
            cancelled = False
            while queue or in_flight or (to_ask(s, manifest) and stop.signal is None):
                if stop.signal is not None and not in_flight:
                    break
                while len(in_flight) < jobs and stop.signal is None and (queue or to_ask(s, manifest)):
                    if not queue:
                        queue += ask_next(s, manifest)
                    index = queue.pop(0)
                    ref = submit(manifest, index, config_from_dict(manifest.runs[index]["config"]))
                    in_flight[ref] = (index, manifest.folder / manifest.runs[index]["folder"], time.time())
                ready = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=POLL_S)[0] if in_flight else []
                began, records = relay(ray, board, watch)
                started.update(began)
                for index, rec in records:
                    if index not in pruning and _prune(s, manifest, index, rec):
                        pruning.add(index)
                        ray.cancel(next(r for r, v in in_flight.items() if v[0] == index), force=False)
                if stop.signal is not None and not cancelled:
                    for ref in in_flight:
                        ray.cancel(ref, force=False)
                    cancelled = True
                for ref in ready:
                    index, folder, t0 = in_flight.pop(ref)
                    entry = record(ray, manifest, index, folder, ref, started.pop(index, t0), stop.signal)
                    if index in pruning and entry["status"] == "interrupted":
                        entry = mark_pruned(manifest, index, s.spec.prune.rule)
                    _tell_if_ended(s, manifest, entry["trial"])
                    watch.ended(entry, sum(e["status"] in (*DONE, "failed") for e in manifest.runs),
                                max(len(manifest.runs), s.spec.trials * len(manifest.data["search"]["seeds"])))
    write_best(manifest)
    return outcome_of(manifest, stopped=stop.signal is not None)


def _prune(s: Any, manifest: Manifest, index: int, rec: dict[str, Any]) -> bool:
    """Report one epoch's metric to the trial of run ``index``; True when the pruner says stop."""
    import math

    entry = manifest.runs[index]
    if len([e for e in manifest.runs if e.get("trial") == entry["trial"]]) > 1:
        return False
    value, epoch = rec.get(s.spec.metric), rec.get("epoch")
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not isinstance(epoch, int):
        return False
    trial = s.trials[entry["trial"]]
    trial.report(float(value), epoch)
    return epoch < int(manifest.data["search"]["base"].get("train", {}).get("epochs", 15)) and trial.should_prune()
