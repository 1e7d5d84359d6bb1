"""Diagnostics: the numbers themselves (the lecture's claims), the training records,
the inspect command and the figures. Gaussian or synthetic inputs, fixed seeds, CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mlp_lab import atomic_files, runs
from mlp_lab import diagnostic_warnings as warn
from mlp_lab import diagnostics as diag
from mlp_lab.cli import app
from mlp_lab.config import config_from_dict
from mlp_lab.data import load_data
from mlp_lab.diagnostic_plots import plot_diagnostics, plot_run_diagnostics, read_diagnostics
from mlp_lab.diagnostics import LayerStats, activation_stats, activation_stats_of_layers, recorded_steps
from mlp_lab.inspection import inspect_network
from mlp_lab.training import run_experiment
from mlp_lab.training_diagnostics import TrainingDiagnostics

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

DEEP = [256] * 8  # deep enough for the effects to compound, small enough to run in ~0.1 s


def inspect(activation: str, init: str, batch: int = 500, **model):
    cfg = config_from_dict(
        {"model": {"hidden": model.pop("hidden", DEEP), "activation": activation, "init": init, **model}}
    )
    return inspect_network(cfg, batch=batch, synthetic=True)


def stds(result) -> list[float]:
    return [s.post_std for s in result.layers]


# --- the lecture's claims, at initialisation -----------------------------------------------


def test_tanh_with_small_normal_init_loses_its_signal_layer_by_layer():
    s = stds(inspect("tanh", "normal", init_std=0.01))
    # Each layer multiplies the std by about 0.01 * sqrt(256) = 0.16: strictly falling, to ~0.
    assert all(b < 0.3 * a for a, b in zip(s, s[1:])), s
    assert s[0] > 0.1 and s[-1] < 1e-5, s


def test_tanh_with_xavier_init_keeps_its_signal_in_a_band():
    s = stds(inspect("tanh", "xavier_normal"))
    assert all(0.4 < v < 0.95 for v in s), s
    assert max(s) / min(s) < 1.5, s


def test_relu_with_glorot_xavier_shrinks_while_he_keeps_the_scale():
    # Glorot & Bengio's Xavier is gain 1 (variance 2/(fan_in+fan_out)): ReLU halves the
    # variance at each layer, so the std falls by ~1/sqrt(2) per layer. (model.py's xavier
    # uses calculate_gain('relu') = sqrt(2) by default, which is the fix; init_gain: 1 undoes it.)
    glorot = stds(inspect("relu", "xavier_normal", init_gain=1.0))
    he = stds(inspect("relu", "kaiming_normal"))
    assert all(b < a for a, b in zip(glorot, glorot[1:])), glorot
    assert glorot[-1] / glorot[0] < 0.15, glorot  # (1/sqrt 2)^7 = 0.09
    assert 0.75 < he[-1] / he[0] < 1.33, he
    assert max(he) / min(he) < 1.3, he


def test_deep_sigmoid_net_first_layer_gradient_is_orders_of_magnitude_below_the_last():
    r = inspect("sigmoid", "default")
    first, last = r.layers[0].grad_norm, r.output.grad_norm
    assert first < 1e-4 * last, (first, last)
    grads = [s.grad_norm for s in r.all_layers]
    assert all(a < b for a, b in zip(grads, grads[1:])), grads  # shrinks at every layer on the way down
    assert any("vanishing gradients (threshold 1e-03)" in w and w.startswith("layer 1 gets") for w in r.warnings), (
        r.warnings
    )


def test_relu_gradients_do_not_vanish_with_he_init():
    r = inspect("relu", "kaiming_normal")
    assert r.layers[0].grad_norm > 0.05 * r.output.grad_norm
    assert not any("gradient" in w for w in r.warnings), r.warnings


def test_large_init_saturates_tanh_and_warns_with_the_threshold():
    r = inspect("tanh", "normal", init_std=1.0)
    assert all(s.saturated > 0.8 for s in r.layers), [s.saturated for s in r.layers]
    (line,) = [w for w in r.warnings if "saturated" in w]  # one line for all eight layers
    assert line.startswith("the tanh units of layers 1-8 are ") and "(threshold 50%)" in line, line


def test_saturation_is_measured_against_the_recorded_margin():
    pre = torch.tensor([[-10.0, 0.0, 10.0, 0.5]])
    stats = diag.activation_stats(pre, torch.sigmoid(pre), "sigmoid").tolist()
    assert stats[-1] == pytest.approx(0.5)  # sigmoid(+-10) are within 0.02 of 0 and 1
    stats = diag.activation_stats(pre, torch.tanh(pre), "tanh").tolist()
    assert stats[-1] == pytest.approx(0.5)
    assert diag.SATURATION_MARGIN == 0.02


def test_relu_forced_dead_reports_dead_fraction_one_and_warns():
    r = inspect("relu", "kaiming_normal", hidden=[64, 64, 64], bias_init="constant", bias_value=-50.0)
    assert [s.dead for s in r.layers] == [1.0, 1.0, 1.0]
    assert (
        "100% of the relu units of layers 1-3 are dead: never positive on 500 samples, so they get no gradient "
        "(threshold 50%)" in r.warnings
    ), r.warnings


def test_warning_texts_name_layer_value_and_threshold():
    layers = [
        LayerStats(layer=1, activation="relu", post_std=0.5, dead=0.1),
        LayerStats(layer=2, activation="relu", post_std=0.5, dead=0.72),
        LayerStats(layer=3, activation="relu", post_std=5e-4, dead=0.2),
    ]
    found = warn.activation_warnings(layers, probe_size=1000)
    assert warn.merge_findings(found, 1000) == [
        "72% of layer 2's relu units are dead: never positive on 1000 probe samples, so they get no gradient (threshold 50%)",
        "layer 3's relu activations have std 5.0e-04: the signal has all but vanished by this layer (threshold 1e-03); "
        "use a scaled init such as xavier_normal or kaiming_normal",
    ]
    layers = [
        LayerStats(layer=i, activation="tanh", post_std=0.9, saturated=v)
        for i, v in ((1, 0.85), (2, 0.4), (3, 0.9), (4, 0.91))
    ]
    assert warn.merge_findings(warn.activation_warnings(layers, 1000), 1000) == [
        "the tanh units of layers 1 and 3-4 are 85%, 90% and 91% saturated: outputs within 0.02 of their bounds, "
        "where the gradient is ~0 (threshold 50%)"
    ]
    assert [f.text for f in warn.gradient_warnings([1e-4, 0.5, 1.0])] == [
        "layer 1 gets 1e-04 of the gradient norm of layer 3 (the output layer): vanishing gradients (threshold 1e-03)"
    ]
    assert [f.kind for f in warn.gradient_warnings([5e3, 1.0])] == ["exploding"]
    assert warn.gradient_warnings([0.1, 1.0]) == []
    assert [f.kind for f in warn.update_warnings([1e-3, 0.5])] == ["update"]


def test_zero_init_gets_no_gradient_and_says_so():
    r = inspect("tanh", "zeros", hidden=[32, 32])
    assert all(s.grad_norm == 0 for s in r.all_layers)
    assert any("no layer's weights get any gradient" in w for w in r.warnings), r.warnings


def test_exploding_activations_warn():
    r = inspect("relu", "normal", hidden=[128] * 4, init_std=1.0)
    assert stds(r)[-1] > 1e3
    assert any("blowing up (threshold 1e+02)" in w for w in r.warnings), r.warnings


def test_dead_units_are_not_judged_on_a_handful_of_samples():
    # On 1 sample, half of a healthy He-initialised ReLU layer is "never positive": it warned
    # "55% of layer 1's relu units are dead" of a net that trains fine.
    few = inspect("relu", "kaiming_normal", batch=1)
    assert few.layers[0].dead > 0.3  # measured, and shown in the table, as before
    assert not any("are dead" in w for w in few.warnings), few.warnings
    assert any(w.startswith("dead units are not judged on 1 sample:") and "--batch 20" in w for w in few.warnings)
    assert few.inputs.startswith("1 standard-normal input of")  # (it said "1 ... inputs")
    enough = inspect("relu", "kaiming_normal", batch=20)
    assert not any("dead" in w for w in enough.warnings), enough.warnings
    # a net whose units are dead is still told so on enough samples
    dead = inspect("relu", "constant", batch=20, init_value=-0.1, hidden=[32, 32])
    assert any("are dead" in w for w in dead.warnings), dead.warnings


def test_inspect_uses_trainings_initial_weights():
    cfg = config_from_dict({"model": {"hidden": [16]}, "train": {"seed": 3}})
    a = inspect_network(cfg, batch=8, synthetic=True)
    b = inspect_network(cfg, batch=8, synthetic=True)
    assert a.layers[0].grad_norm == b.layers[0].grad_norm and a.loss == b.loss


# --- recording during training -------------------------------------------------------------

SMALL = {
    "name": "diag",
    "data": {"dataset": "synthetic", "synthetic_train_size": 600, "synthetic_test_size": 100},
    "model": {"hidden": [32, 32], "init": "kaiming_normal"},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "train": {"epochs": 1, "batch_size": 50, "diagnostics": True, "diagnostics_per_epoch": 3},
}


def train(tmp_path: Path, raw: dict | None = None, overrides: list[str] | None = None, name: str = "run"):
    cfg = config_from_dict(raw or SMALL, overrides)
    data = load_data(cfg.data, tmp_path / "data", "cpu", seed=cfg.train.seed)
    run_dir = tmp_path / name
    run_dir.mkdir()
    return run_experiment(cfg, run_dir, data, torch.device("cpu")), run_dir


def test_recorded_steps_are_evenly_spaced():
    assert recorded_steps(12, 3) == {0, 4, 8}
    assert recorded_steps(10, 4) == {0, 2, 5, 7}
    assert recorded_steps(3, 5) == {0, 1, 2}
    assert recorded_steps(600, 1) == {0}


def test_training_writes_one_line_per_recorded_step_and_a_probe_per_epoch(tmp_path):
    result, run_dir = train(tmp_path, overrides=["train.epochs=2"])
    assert result.status == "completed"
    recs = [json.loads(line) for line in (run_dir / runs.DIAGNOSTICS).read_text().splitlines()]
    # epoch 0 (initialisation) probe, then per epoch: 3 steps + 1 probe.
    assert len(recs) == 1 + 2 * (3 + 1)
    assert [(r["kind"], r["epoch"], r.get("step")) for r in recs] == [
        ("probe", 0, None),
        ("step", 1, 0),
        ("step", 1, 4),
        ("step", 1, 8),
        ("probe", 1, None),
        ("step", 2, 0),
        ("step", 2, 4),
        ("step", 2, 8),
        ("probe", 2, None),
    ]
    step = recs[1]
    assert step["steps"] == 12 and step["saturation_margin"] == diag.SATURATION_MARGIN
    hidden, out = step["layers"][:2], step["layers"][2]
    for i, layer in enumerate(hidden, start=1):
        assert layer["layer"] == i and layer["activation"] == "relu" and layer["width"] == 32
        assert set(layer) >= {
            "pre_mean",
            "pre_std",
            "post_mean",
            "post_std",
            "zero_frac",
            "grad_norm",
            "weight_norm",
            "update_ratio",
        }
        assert layer["grad_norm"] > 0 and 0 < layer["update_ratio"] < 1 and layer["post_std"] > 0
    assert out == {
        "layer": 3,
        "output": True,
        "grad_norm": out["grad_norm"],
        "weight_norm": out["weight_norm"],
        "update_ratio": out["update_ratio"],
    }
    assert out["grad_norm"] > 0
    probe = recs[4]
    assert probe["probe_size"] == 600 and probe["warnings"] == []
    assert [set(d) >= {"dead", "post_std", "pre_std"} for d in probe["layers"]] == [True, True]


def test_update_ratio_matches_the_weights_actual_change(tmp_path):
    cfg = config_from_dict(SMALL)
    data = load_data(cfg.data, tmp_path / "data", "cpu")
    torch.manual_seed(0)
    from mlp_lab.model import build_model

    model = build_model(cfg.model, data.input_dim, 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    d = TrainingDiagnostics(model, opt, cfg, data, tmp_path / "d.jsonl", torch.device("cpu"))
    assert d.steps == 12 and 0 in d.schedule and 1 not in d.schedule
    x, y = data.normalize(data.train_x[:50]), data.train_y[:50]
    before = model[0].weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(x), y)  # a plain step: the hooks do the recording
    loss.backward()
    grad_norm = float(model[0].weight.grad.norm())
    opt.step()
    assert [r["kind"] for r in read_diagnostics_file(tmp_path / "d.jsonl")] == ["probe"]  # epoch 0's
    # Unrecorded steps: the forward hooks are off, so torch's fast call path stays.
    assert all(not m._forward_hooks for m in model)
    model(x)
    assert d._seen == {}
    d.close()  # an epoch that did not end: its step lines are still written
    rec = read_diagnostics_file(tmp_path / "d.jsonl")[-1]
    assert (rec["kind"], rec["step"]) == ("step", 0)
    layer1 = rec["layers"][0]
    assert layer1["grad_norm"] == pytest.approx(grad_norm, rel=1e-4)
    assert layer1["update_ratio"] == pytest.approx(
        float((model[0].weight.detach() - before).norm() / before.norm()), rel=1e-4
    )
    assert all(not m._forward_hooks for m in model)
    assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks


def read_diagnostics_file(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_diagnostics_do_not_change_what_training_computes(tmp_path):
    on, _ = train(tmp_path, overrides=["train.epochs=2"], name="on")
    off, _ = train(tmp_path, overrides=["train.epochs=2", "train.diagnostics=false"], name="off")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(on.history) == strip(off.history)


def test_lbfgs_records_the_gradients_its_closure_computed(tmp_path):
    result, run_dir = train(tmp_path, overrides=["optimizer={name: lbfgs, lr: 0.1, max_iter: 3}"])
    assert result.status == "completed"
    steps = [r for r in read_diagnostics(run_dir) if r["kind"] == "step"]
    assert len(steps) == 3
    assert all(d["grad_norm"] is not None and d["update_ratio"] is not None for r in steps for d in r["layers"])


def test_dead_units_warning_reaches_the_summary_once(tmp_path):
    result, run_dir = train(tmp_path, overrides=["model.bias_init=constant", "model.bias_value=-50", "train.epochs=2"])
    dead = [w for w in result.summary["warnings"] if "dead" in w]
    assert dead == [  # once, although both epochs (and the initial probe) cross the threshold
        "100% of the relu units of layers 1-2 are dead: never positive on 600 probe samples, so they get no "
        "gradient (threshold 50%)",
    ]
    probes = [r for r in read_diagnostics(run_dir) if r["kind"] == "probe"]
    assert [r["epoch"] for r in probes] == [0, 1, 2]
    assert all(d["dead"] == 1.0 for r in probes for d in r["layers"])


def test_vanishing_gradients_warn_during_training(tmp_path):
    result, _ = train(
        tmp_path, overrides=["model.activation=sigmoid", "model.init=default", "model.hidden=[64,64,64,64,64,64,64,64]"]
    )
    assert any(
        w.startswith("layer 1 gets") and "vanishing gradients (threshold 1e-03)" in w
        for w in result.summary["warnings"]
    ), result.summary["warnings"]


def test_resume_drops_diagnostics_of_the_epochs_it_redoes(tmp_path):
    result, run_dir = train(tmp_path, overrides=["train.epochs=1"])
    # Pretend the run got into epoch 2 (records written) and died before its checkpoint.
    atomic_files.append_jsonl(
        run_dir / runs.DIAGNOSTICS, {"kind": "step", "epoch": 2, "step": 0, "steps": 12, "layers": []}
    )
    cfg = config_from_dict(SMALL, ["train.epochs=2"])
    data = load_data(cfg.data, tmp_path / "data", "cpu")
    resumed = run_experiment(cfg, run_dir, data, torch.device("cpu"), resume_from=run_dir / runs.CHECKPOINT)
    assert resumed.status == "completed"
    recs = read_diagnostics(run_dir)
    assert [(r["kind"], r["epoch"]) for r in recs] == [("probe", 0)] + [("step", 1)] * 3 + [("probe", 1)] + [
        ("step", 2)
    ] * 3 + [("probe", 2)]
    assert all(r["layers"] for r in recs)


def test_train_cli_diagnose_flag_writes_diagnostics(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(json.dumps({**SMALL, "train": {**SMALL["train"], "diagnostics": False}}))
    result = runner.invoke(
        app,
        [
            "train",
            "--quiet",
            "--config",
            str(cfg_path),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--diagnose",
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert len(read_diagnostics(run_dir)) == 1 + 3 + 1


# --- figures --------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_diagnostics_draws_runs_that_have_them(tmp_path):
    _, with_diag = train(tmp_path, name="a")
    _, without = train(tmp_path, overrides=["train.diagnostics=false"], name="b")
    assert plot_run_diagnostics([[without]], ["b"], tmp_path / "curves.png") is None
    out = plot_run_diagnostics([[with_diag], [without]], ["a", "b"], tmp_path / "curves.png")
    assert out == tmp_path / "curves.diagnostics.png"
    assert out.read_bytes().startswith(PNG)
    from mlp_lab.plots import PlotError

    with pytest.raises(PlotError, match="no run has diagnostics"):
        plot_diagnostics([("b", [])], tmp_path / "x.png")


# --- mlp-lab inspect ------------------------------------------------------------------------


def write_config(tmp_path: Path, **model) -> Path:
    path = tmp_path / "net.yaml"
    path.write_text(json.dumps({"name": "net", "model": {"hidden": [64, 64, 64], **model}}))
    return path


def test_inspect_cli_prints_the_per_layer_table(tmp_path):
    cfg = write_config(tmp_path, activation="tanh", init="normal")
    result = runner.invoke(
        app,
        [
            "inspect",
            "--config",
            str(cfg),
            "--synthetic-input",
            "--batch",
            "200",
            "--set",
            "model.hidden=[128,128,128,128,128,128]",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("layer", "mean", "std", "saturated %", "dead %", "weight grad norm"):
        assert header in out
    assert "6 hidden layers" in out and "output (logits)" in out
    assert "all but vanished" in result.output  # the warning, on stderr


def test_inspect_cli_plot_writes_a_png(tmp_path):
    cfg = write_config(tmp_path)
    result = runner.invoke(
        app, ["inspect", "--config", str(cfg), "--synthetic-input", "--batch", "100", "--plot", str(tmp_path / "h.png")]
    )
    assert result.exit_code == 0, result.output
    data = (tmp_path / "h.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 2000


def test_inspect_cli_on_real_format_files(tmp_path):
    from fakedata import make_idx_dataset

    data_dir = tmp_path / "d"
    make_idx_dataset(data_dir, n_train=50, n_test=10)
    cfg = write_config(tmp_path)
    result = runner.invoke(app, ["inspect", "--config", str(cfg), "--data-dir", str(data_dir), "--batch", "1000"])
    assert result.exit_code == 0, result.output
    assert "the first 50 training samples of MNIST" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch", "0", "--synthetic-input"], "--batch must be at least 1"),
        (["--synthetic-input", "--plot", "h.jpg"], "--plot h.jpg: the file name must end in"),
        (["--synthetic-input", "--set", "model.hidden=[]"], "no hidden layer to inspect"),
        (["--synthetic-input", "--set", "model.activaton=tanh"], "model.activaton"),
        (["--set", "data.download=false", "--data-dir", "nowhere"], "MNIST not found"),
    ],
)
def test_inspect_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    cfg = write_config(tmp_path)
    result = runner.invoke(app, ["inspect", "--config", str(cfg), *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output


def test_inspect_cli_missing_config_is_exit_2(tmp_path):
    result = runner.invoke(app, ["inspect", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output


def test_every_lecture_config_builds_and_inspects():
    files = sorted((REPO / "configs" / "lecture").glob("*_*.yaml"))  # not sweep.yaml
    assert len(files) >= 10
    from mlp_lab.config import load_config

    for f in files:
        cfg = load_config(f)
        if not cfg.model.hidden:
            continue
        r = inspect_network(cfg, batch=16, synthetic=True)
        assert len(r.layers) == len(cfg.model.hidden)
        assert all(math.isfinite(s.grad_norm) for s in r.all_layers)


def test_show_and_compare_plot_also_draw_diagnostics(tmp_path):
    _, with_diag = train(tmp_path, name="a")
    _, without = train(tmp_path, overrides=["train.diagnostics=false"], name="b")
    result = runner.invoke(app, ["show", str(with_diag), "--plot", str(tmp_path / "one.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "one.png").read_bytes().startswith(PNG)
    assert (tmp_path / "one.diagnostics.png").read_bytes().startswith(PNG)
    assert "wrote diagnostics plot to" in result.output

    result = runner.invoke(app, ["show", str(without), "--plot", str(tmp_path / "two.png")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "two.diagnostics.png").exists() and "diagnostics plot" not in result.output

    result = runner.invoke(app, ["compare", str(with_diag), str(without), "--plot", str(tmp_path / "all.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "all.diagnostics.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    "activation", ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "maxout", "gelu", "silu"]
)
def test_every_activation_inspects(activation):
    r = inspect(activation, "xavier_normal", batch=32, hidden=[24, 24])
    assert [s.width for s in r.layers] == [24, 24]
    assert (r.layers[0].saturated is not None) == (activation in ("sigmoid", "tanh"))
    assert (r.layers[0].dead is not None) == (activation in diag.RELU_FAMILY)
    assert all(math.isfinite(s.post_std) and s.grad_norm > 0 for s in r.layers)


def test_diagnostics_with_maxout_norm_after_activation_and_dropout(tmp_path):
    result, run_dir = train(
        tmp_path,
        overrides=[
            "model.activation=maxout",
            "model.norm=batchnorm",
            "model.norm_position=after_activation",
            "model.dropout=0.2",
        ],
    )
    assert result.status == "completed"
    steps = [r for r in read_diagnostics(run_dir) if r["kind"] == "step"]
    assert [d.get("width") for d in steps[0]["layers"]] == [32, 32, None]
    assert all(d["post_std"] > 0 for r in steps for d in r["layers"][:2])


def test_a_run_that_diverges_in_its_first_epoch_keeps_the_initial_probes_warnings(tmp_path):
    # N(0, 1) init in a deep ReLU net: activations blow up at initialisation (the probe
    # says so before step 1), and a huge learning rate makes epoch 1 diverge.
    result, run_dir = train(
        tmp_path,
        overrides=[
            "model.hidden=[64, 64, 64, 64, 64, 64]",
            "model.init=normal",
            "model.init_std=1.0",
            "optimizer.lr=1000000.0",
        ],
    )
    assert result.status == "diverged" and result.summary["epochs_done"] == 0
    summary = json.loads((run_dir / runs.SUMMARY).read_text())
    assert summary["warnings"], summary
    assert any("layer" in w for w in summary["warnings"])


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "elu"])
@pytest.mark.parametrize("widths", [[32, 32, 32], [32, 16, 8]], ids=["one-shape", "mixed"])
def test_the_layers_measured_together_give_each_layers_own_statistics(activation, widths):
    """A recorded step measures its layers in one go: the same numbers as one by one."""
    torch.manual_seed(0)
    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "elu": torch.nn.functional.elu}[activation]
    pairs = [(pre, fn(pre)) for pre in (torch.randn(20, w) * 3 + 0.5 for w in widths)]
    together = activation_stats_of_layers(pairs, activation)
    one_by_one = torch.stack([activation_stats(pre, post, activation) for pre, post in pairs])
    torch.testing.assert_close(together, one_by_one, equal_nan=True, rtol=1e-5, atol=1e-6)
    # ...and activation_stats itself against the textbook definitions
    pre, post = pairs[0]
    assert float(one_by_one[0, 1]) == pytest.approx(float(pre.std()), rel=1e-5)
    assert float(one_by_one[0, 3]) == pytest.approx(float(post.std()), rel=1e-5)
    if activation in ("sigmoid", "tanh"):  # outputs within the margin of either bound
        lo, hi = diag.SATURATING[activation]
        margin = diag.SATURATION_MARGIN
        expected = ((post < lo + margin) | (post > hi - margin)).float().mean()
    else:  # the fraction of outputs <= 0
        expected = (post <= 0).float().mean()
    assert float(together[0, 4]) == pytest.approx(float(expected), abs=1e-7)
    assert 0 < float(expected) < 1  # the data crosses the thresholds, so the count is tested


def test_maxout_layers_are_measured_together_though_their_inputs_are_wider():
    torch.manual_seed(0)
    pres = [torch.randn(20, 16) for _ in range(3)]
    pairs = [(pre, pre.view(20, 8, 2).amax(-1)) for pre in pres]
    together = activation_stats_of_layers(pairs, "maxout")
    one_by_one = torch.stack([activation_stats(pre, post, "maxout") for pre, post in pairs])
    torch.testing.assert_close(together, one_by_one, equal_nan=True, rtol=1e-5, atol=1e-6)
    assert float(together[2, 3]) == pytest.approx(float(pairs[2][1].std()), rel=1e-5)


def test_dead_fraction_counts_units_never_positive_per_layer():
    post = torch.relu(torch.randn(50, 8))
    post[:, [1, 5]] = 0  # two dead units
    post[:, 2] = -1e-3  # leaky: negative, never positive, dead too
    assert float(diag.dead_fraction(post)) == 3 / 8
    assert float(diag.dead_fraction(torch.zeros(5, 4))) == 1.0
