"""mlp-lab sweep --backend ray on a two-node Ray cluster (``ray.cluster_utils.Cluster``, all
on 127.0.0.1): the sweep joins it by --address, and a node removed mid-sweep costs no run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node binds to 127.0.0.1: never another address

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from mlp_lab import sweeps  # noqa: E402
from mlp_lab.sweeps import load_manifest, load_sweep  # noqa: E402

from helpers import SWEEP_TINY, merge, without_seconds  # noqa: E402

TINY = merge(SWEEP_TINY, {"data": {"synthetic_train_size": 1000}, "train": {"epochs": 150}})


@pytest.fixture
def cluster():
    """A head that runs no task (it holds the driver's data and progress board) and two
    worker nodes of one CPU each."""
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def new_sweep(tmp_path: Path, name: str, seeds: int) -> Path:
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"base": "tiny.yaml", "seeds": seeds}), encoding="utf-8")
    return sweeps.start_sweep(load_sweep(tmp_path / f"{name}.yaml"), tmp_path / name).folder


def metrics(folder: Path) -> list[list[dict]]:
    return [
        without_seconds([json.loads(x) for x in (folder / e["folder"] / "metrics.jsonl").read_text().splitlines()])
        for e in load_manifest(folder).runs
    ]


def test_a_node_removed_mid_sweep_costs_no_run(tmp_path, cluster):
    c, nodes = cluster
    removed: list[str] = []

    class RemoveANode(sweeps.Watch):
        def __init__(self):
            self.nodes: dict[int, str] = {}
            self.ran_on: list[str] = []

        def started(self, index, place):
            self.nodes[index] = place.node
            self.ran_on.append(place.node)

        def epoch(self, index, epoch):  # a run inside its epochs: take its node away, once
            if not removed and epoch < TINY["train"]["epochs"]:
                node = next(n for n in nodes if n.node_id == self.nodes[index])
                c.remove_node(node)
                removed.append(node.node_id)

    folder = new_sweep(tmp_path, "s", seeds=3)
    watch = RemoveANode()
    outcome = sweeps.run_sweep(folder, threads=1, backend="ray", address=c.address, watch=watch)
    assert outcome.counts == {"completed": 3}, load_manifest(folder).runs
    assert removed and len(set(watch.ran_on)) == 2  # the runs used both worker nodes, one of them went
    assert len(watch.ran_on) == 4  # the run on the removed node ran once more, on the other
    assert not ray.is_initialized()  # the sweep left the cluster it joined

    straight = new_sweep(tmp_path, "straight", seeds=3)
    sweeps.run_sweep(straight, jobs=1, threads=1)
    assert metrics(folder) == metrics(straight)
