"""compare groups runs that differ only in their seed and says whether a difference is real."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from mlp_lab import results
from mlp_lab.results import CompareError, build_comparison

from test_compare import REPO, _assert_png, invoke, make_run

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy is the reference for these numbers (pip install scipy)")

HE = {"model": {"init": "kaiming_normal"}}
XAVIER = {"model": {"init": "xavier_normal"}}
# Final test accuracies per seed 0..4 (the third epoch of each run).
HE_ACCS = [0.9790, 0.9795, 0.9802, 0.9788, 0.9799]
XAVIER_ACCS = [0.9761, 0.9770, 0.9752, 0.9768, 0.9759]
CLOSE_ACCS = [0.9792, 0.9786, 0.9801, 0.9790, 0.9796]  # within noise of HE


def seeded(root, name, raw, finals, seeds=None):
    for seed, acc in zip(seeds or range(len(finals)), finals):
        make_run(root, name, {**raw, "train": {"seed": seed}}, accs=[acc - 0.01, acc - 0.005, acc])


@pytest.fixture
def inits(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "xavier", XAVIER, XAVIER_ACCS)
    return root


def test_runs_that_differ_only_in_seed_are_one_row_with_mean_std_and_interval(inits):
    comp = build_comparison([inits])
    assert comp.grouped and [g.n for g in comp.rows] == [5, 5]
    he = comp.rows[0]
    assert he.params["model.init"] == "kaiming_normal" and he.varying == ["train.seed"]
    assert he.stats.mean == pytest.approx(statistics.mean(HE_ACCS), abs=1e-12)
    assert he.stats.std == pytest.approx(statistics.stdev(HE_ACCS), abs=1e-12)
    lo, hi = scipy_stats.t.interval(0.95, 4, loc=statistics.mean(HE_ACCS), scale=scipy_stats.sem(HE_ACCS))
    assert he.stats.ci == pytest.approx((lo, hi), abs=1e-9)
    assert he.metrics["test_acc"] == pytest.approx(statistics.mean(HE_ACCS))
    assert comp.param_columns == ["model.init"]  # the seeds are the same {0..4} in both groups


def test_no_group_shows_every_run_as_before(inits):
    comp = build_comparison([inits], group=False)
    assert len(comp.rows) == 10 and not comp.grouped
    r = invoke("compare", str(inits), "--no-group", "--format", "json")
    doc = json.loads(r.stdout)
    assert len(doc["rows"]) == 10 and "n" not in doc["columns"] and doc["grouped"] is False


def test_same_seeds_get_the_paired_test_and_the_verdict_gives_difference_interval_and_p(inits):
    comp = build_comparison([inits])
    assert comp.baseline is comp.best  # the default baseline
    vs = comp.versus_of(comp.rows[1]).difference
    ref = scipy_stats.ttest_rel(XAVIER_ACCS, HE_ACCS)
    assert vs.test == "paired" and vs.p == pytest.approx(ref.pvalue, abs=1e-9)
    assert vs.ci == pytest.approx(tuple(ref.confidence_interval(0.95)), abs=1e-9)
    assert not vs.within_noise
    text = results.verdict(comp)
    assert text.startswith("he 97.95 ± 0.06% (n=5) is ahead of xavier 97.62 ± 0.07% (n=5) by 0.33 pp [0.18, 0.48], ")
    assert f"p = {ref.pvalue:.2g} (paired t-test on per-seed differences)" in text
    assert "noise" not in text


def test_other_seeds_get_welchs_test(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "xavier", XAVIER, XAVIER_ACCS, seeds=[10, 11, 12, 13, 14])
    comp = build_comparison([root])
    vs = comp.versus_of(comp.rows[1]).difference
    ref = scipy_stats.ttest_ind(XAVIER_ACCS, HE_ACCS, equal_var=False)
    assert vs.test == "welch" and vs.p == pytest.approx(ref.pvalue, abs=1e-9) and vs.df == pytest.approx(ref.df)
    assert "(Welch's t-test)" in results.verdict(comp)
    assert comp.param_columns == ["model.init", "train.seed"]  # the groups ran different seeds: shown
    assert results.fmt_value(comp.rows[0].params["train.seed"]) == "{0, 1, 2, 3, 4}"


def test_a_difference_inside_seed_noise_says_so(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "close", {"model": {"init": "kaiming_uniform"}}, CLOSE_ACCS)
    comp = build_comparison([root])
    assert comp.versus_of(comp.rows[1]).difference.within_noise
    assert results.verdict(comp).endswith(": within seed noise; more seeds would tell")
    table = results.to_table(comp)
    assert " noise" in table and "baseline" in table


def test_fewer_than_three_seeds_give_values_but_no_interval_and_ask_for_more(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS[:2])
    seeded(root, "xavier", XAVIER, XAVIER_ACCS[:2])
    comp = build_comparison([root])
    assert comp.rows[0].stats.ci is None and comp.versus_of(comp.rows[1]).reason == "too few runs"
    text = results.verdict(comp)
    assert "(n=2)" in text and "run more seeds" in text
    assert "n<3: more seeds" in results.to_table(comp)


def test_baseline_names_the_reference_group(inits):
    comp = build_comparison([inits], baseline="model.init=xavier_normal")
    assert comp.baseline.params["model.init"] == "xavier_normal"
    assert comp.versus_of(comp.baseline).reason == "baseline"
    he = comp.versus_of(comp.rows[0]).difference
    assert he.diff == pytest.approx(statistics.mean(HE_ACCS) - statistics.mean(XAVIER_ACCS))
    assert "by 0.33 pp" in results.verdict(comp)


@pytest.mark.parametrize(
    "text, message",
    [
        # a value no group has: the values the groups have (they said only which fields differ)
        (
            "model.init=orthogonal",
            "no group of runs has that; model.init is kaiming_normal, xavier_normal in these runs",
        ),
        ("model.init=Xavier_Normal", "(did you mean 'xavier_normal'?)"),
        ("model.act=relu", "unknown key"),
        ("model.init", "expected key=value"),
    ],
)
def test_a_bad_baseline_is_one_line_and_exit_2(inits, text, message):
    with pytest.raises(CompareError, match=message):
        build_comparison([inits], baseline=text)
    r = invoke("compare", str(inits), "--baseline", text)
    assert r.exit_code == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--baseline", "model.init=xavier_normal"], ["--group-by", "model.init"]])
def test_grouping_options_refuse_no_group(inits, option):
    r = invoke("compare", str(inits), "--no-group", *option)
    assert r.exit_code == 2 and "cannot go with --no-group" in r.stderr and option[0] in r.stderr


def test_group_by_lists_what_still_varies_in_a_group(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "xavier", XAVIER, XAVIER_ACCS)
    seeded(root, "tanh", {"model": {"activation": "tanh", "init": "xavier_normal"}}, [0.96, 0.961, 0.962])
    comp = build_comparison([root], group_by=["model.activation"])
    assert [(g.params["model.activation"], g.n) for g in comp.rows] == [("relu", 10), ("tanh", 3)]
    relu = comp.rows[0]
    assert set(relu.varying) >= {"model.init", "train.seed"}
    assert results.fmt_value(relu.params["model.init"], None) == "{kaiming_normal, xavier_normal}"
    r = invoke("compare", str(root), "--group-by", "model.activation", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert [row["n"] for row in csv.DictReader(io.StringIO(r.stdout))] == ["10", "3"]


def test_runs_on_other_data_are_never_tested_against_each_other(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "mnist", HE, HE_ACCS)
    seeded(root, "fashion", {**HE, "data": {"dataset": "fashion_mnist"}}, [0.89, 0.891, 0.888, 0.892, 0.889])
    comp = build_comparison([root])
    assert comp.versus_of(comp.rows[1]).reason == "other data" and comp.runner_up is None
    text = results.verdict(comp)
    assert "is not comparable on accuracy" in text and "ahead of" not in text
    text = results.verdict(build_comparison([root], baseline="data.dataset=fashion_mnist"))
    assert "the baseline fashion 89.00 ± 0.16% (n=5) ran on other data, so the two are not tested" in text


def test_sort_top_and_metric_filters_act_on_groups(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "he", HE, HE_ACCS)
    seeded(root, "xavier", XAVIER, XAVIER_ACCS)
    seeded(root, "small", {"model": {"init": "normal"}}, [0.11, 0.12, 0.1135])
    assert [g.params["model.init"] for g in build_comparison([root], sort="test_acc", reverse=True).rows] == [
        "normal",
        "xavier_normal",
        "kaiming_normal",
    ]
    assert [g.n for g in build_comparison([root], top=1).rows] == [5]
    kept = build_comparison([root], filters=["test_acc>0.977"]).rows  # the mean, not each run
    assert [g.params["model.init"] for g in kept] == ["kaiming_normal"]
    by_seed = build_comparison([root], filters=["train.seed<2"]).rows  # a config field picks runs
    assert [g.n for g in by_seed] == [2, 2, 2]


def test_every_format_carries_the_aggregates_and_json_the_runs(inits, tmp_path):
    r = invoke("compare", str(inits), "--format", "json")
    doc = json.loads(r.stdout)
    assert doc["grouped"] is True and doc["baseline"] == doc["best"]
    he, xavier = doc["rows"]
    assert he["n"] == 5 and he["test_acc"] == pytest.approx(statistics.mean(HE_ACCS))
    assert he["test_acc_std"] == pytest.approx(statistics.stdev(HE_ACCS))
    assert he["versus"] == "baseline" and xavier["test"] == "paired" and xavier["within_noise"] is False
    assert sorted(run["test_acc"] for run in he["runs"]) == sorted(HE_ACCS)
    assert sorted(run["train.seed"] for run in xavier["runs"]) == [0, 1, 2, 3, 4]
    rows = list(csv.DictReader(io.StringIO(invoke("compare", str(inits), "--format", "csv").stdout)))
    assert float(rows[1]["diff"]) == pytest.approx(statistics.mean(XAVIER_ACCS) - statistics.mean(HE_ACCS))
    assert {"n", "test_acc_ci_low", "test_acc_ci_high", "p_value", "test"} <= set(rows[0])
    md = invoke("compare", str(inits), "--format", "markdown").stdout
    assert "| n |" in md and "97.95 ± 0.06%" in md and "95% CI" in md and "(paired t-test" in md


def test_plot_draws_each_group_as_mean_and_band(inits, tmp_path):
    from mlp_lab.plots import comparison_figure, mean_series

    comp = build_comparison([inits])
    groups = [[r.history for r in results.runs_of(g)] for g in comp.rows]
    xs, means, stds = mean_series(groups[0], "test_acc")
    assert xs == [1, 2, 3] and means[-1] == pytest.approx(statistics.mean(HE_ACCS))
    assert stds[-1] == pytest.approx(statistics.stdev(HE_ACCS))
    fig = comparison_figure(groups, results.plot_labels(comp), best=0)
    acc_ax = fig.axes[0]
    assert len(acc_ax.collections) == 2  # one band per group
    assert "10 runs in 2 seed groups" in fig._suptitle.get_text()
    r = invoke("compare", str(inits), "--plot", str(tmp_path / "c.png"))
    assert r.exit_code == 0, r.output
    _assert_png(tmp_path / "c.png")


def test_real_runs_with_seeds_group_and_every_format_parses(tmp_path):
    runs_dir = tmp_path / "runs"
    base = [
        "train",
        "--quiet",
        "--config",
        str(REPO / "configs" / "smoke.yaml"),
        "--runs-dir",
        str(runs_dir),
        "--set",
        "train.epochs=1",
        "--set",
        "data.synthetic_train_size=300",
        "--set",
        "data.synthetic_test_size=100",
        "--set",
        "model.hidden=[16]",
        "--set",
        "train.checkpoint=false",
    ]
    for act in ("relu", "tanh"):
        for seed in (0, 1, 2):
            r = invoke(*base, "--set", f"model.activation={act}", "--set", f"train.seed={seed}")
            assert r.exit_code == 0, r.output
    doc = json.loads(invoke("compare", str(runs_dir), "--format", "json").stdout)
    assert [row["n"] for row in doc["rows"]] == [3, 3]
    assert all(row["test_acc_ci_low"] <= row["test_acc"] <= row["test_acc_ci_high"] for row in doc["rows"])
    assert doc["rows"][1]["test"] == "paired" and doc["rows"][1]["p_value"] is not None
    rows = list(csv.DictReader(io.StringIO(invoke("compare", str(runs_dir), "--format", "csv").stdout)))
    assert [r["n"] for r in rows] == ["3", "3"]
    md = invoke("compare", str(runs_dir), "--format", "markdown").stdout.splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    body = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:4]]
    assert header[:4] == ["#", "run", "status", "n"] and [row[3] for row in body] == ["3", "3"]
    assert all(len(row) == len(header) for row in body) and md[5].startswith("smoke ")  # the verdict
    table = invoke("compare", str(runs_dir))
    assert table.exit_code == 0 and "±" in table.stdout and "vs baseline" in table.stdout


def test_a_seed_groups_diagnostics_are_the_mean_of_its_runs():
    from mlp_lab.diagnostic_plots import mean_records

    def recs(g):
        return [
            {
                "kind": "step",
                "epoch": 1,
                "step": 0,
                "steps": 4,
                "layers": [
                    {"layer": 1, "activation": "relu", "grad_norm": g, "update_ratio": None},
                    {"layer": 2, "output": True, "grad_norm": 2 * g},
                ],
            },
            {"kind": "probe", "epoch": 1, "layers": [{"layer": 1, "activation": "relu", "dead": g / 10}]},
        ]

    merged = mean_records([recs(1.0), recs(3.0)])
    step, probe = merged
    assert (step["kind"], step["epoch"], step["step"]) == ("step", 1, 0)
    assert step["layers"] == [
        {"layer": 1, "activation": "relu", "grad_norm": 2.0, "update_ratio": None},
        {"layer": 2, "output": True, "grad_norm": 4.0},
    ]
    assert probe["layers"] == [{"layer": 1, "activation": "relu", "dead": pytest.approx(0.2)}]


@pytest.mark.parametrize("order", ["missing first", "missing last"])
def test_a_number_one_run_lacks_is_the_mean_of_the_runs_that_have_it(order):
    """A diverged seed records its update ratio as null (NaN): the group's mean is the other
    seeds', whichever run comes first (compare --plot of such a group once raised)."""
    from mlp_lab.diagnostic_plots import mean_records

    def recs(ratio):
        return [{"kind": "step", "epoch": 1, "step": 0, "layers": [{"layer": 1, "update_ratio": ratio}]}]

    runs = [recs(None), recs(1e-3), recs(3e-3)]
    merged = mean_records(runs if order == "missing first" else runs[::-1])
    assert merged[0]["layers"] == [{"layer": 1, "update_ratio": pytest.approx(2e-3)}]


def test_runs_that_repeat_a_seed_are_one_observation(tmp_path):
    root = tmp_path / "runs"
    seeded(root, "init_relu_he", HE, HE_ACCS)
    seeded(root, "act_relu_deep", HE, HE_ACCS)  # the same experiment under another name: identical results
    seeded(root, "xavier", XAVIER, XAVIER_ACCS)
    comp = build_comparison([root])
    merged = comp.rows[0]
    assert merged.run == "act_relu_deep / init_relu_he" and merged.n == 10 and merged.stats.n == 5
    assert merged.stats.std == pytest.approx(statistics.stdev(HE_ACCS))  # not shrunk by the copies
    assert comp.versus_of(comp.rows[1]).difference.test == "paired"
    assert "(n=5 of 10; 5 repeated a seed)" in results.verdict(comp)
    assert "5/10" in results.to_table(comp)
