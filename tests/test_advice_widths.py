"""Learning rates across model sizes (``tuner advise --width``) on stores of synthetic runs whose
best lr follows a planted power law in the width."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from tuner.advice.source import NoRunsError
from tuner.advice.widths import (
    WidthFit,
    WidthPoint,
    WidthSweepError,
    fit_power_law,
    lr_across_widths,
    student_t_quantile,
    task_base,
    task_overrides,
)
from tuner.cli import cli
from tuner.store import TaskRecord, open_store, record_run, record_task
from tuner.training.loop import RunResult

BASE = "mlp"
DEFAULT_WIDTH = 128
WIDTHS = (64, 128, 256, 512)
PLANTED = {"adamw": (1e-3, -1.0), "sgd": (0.1, -0.5)}
"""Per optimizer: the best lr at width 128 and the exponent of the width."""
NOISE = (1.03, 0.97, 0.98, 1.02)
"""A little noise on each width's best lr (a factor, one per width)."""


def planted_lr(optimizer: str, width: float) -> float:
    at_default, exponent = PLANTED[optimizer]
    return at_default * (width / DEFAULT_WIDTH) ** exponent


def task_name(width: int, **others: int) -> str:
    """``mlp`` at the default width, ``mlp[width=64]`` otherwise (sorted keys)."""
    values = {**others, **({"width": width} if width != DEFAULT_WIDTH else {})}
    inside = ",".join(f"{k}={v}" for k, v in sorted(values.items()))
    return f"{BASE}[{inside}]" if inside else BASE


def add_task(store, width: int, depth: int = 2, **others: int) -> str:
    name = task_name(width, **({"depth": depth} if depth != 2 else {}), **others)
    record_task(store, TaskRecord(name, "vision", "val_accuracy", "maximize", 0.9,
                                  params={"depth": depth, "width": width}))
    return name


def add_config(store, task: str, optimizer: str, lr: float, finals: list[float]) -> None:
    for seed, final in enumerate(finals):
        record_run(store, None, RunResult(
            task=task, optimizer=optimizer, params={"lr": lr}, seed=seed, status="complete",
            final_metric=final, best_metric=final, optimizer_state_bytes=800, param_count=100,
        ))


def add_optimizer(store, task: str, optimizer: str, best_lr: float) -> None:
    """The best configuration at ``best_lr``; two worse ones at 4x either side."""
    add_config(store, task, optimizer, best_lr, [0.970, 0.972])
    add_config(store, task, optimizer, best_lr * 4, [0.930, 0.932])
    add_config(store, task, optimizer, best_lr / 4, [0.940, 0.942])


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> str:
    """Four widths of mlp (depth 2) with adamw and sgd on the planted law; lion at two widths
    only; a depth-3 model at width 64 (another sweep) and an old record without parameters."""
    url = f"sqlite:///{tmp_path_factory.mktemp('widths') / 'tuner.db'}"
    store = open_store(url)
    for width, noise in zip(WIDTHS, NOISE, strict=True):
        name = add_task(store, width)
        for optimizer in PLANTED:
            add_optimizer(store, name, optimizer, planted_lr(optimizer, width) * noise)
        if width in (64, 512):
            add_optimizer(store, name, "lion", 1e-4 * DEFAULT_WIDTH / width)
    deeper = add_task(store, 64, depth=3)
    add_optimizer(store, deeper, "adamw", 0.5)  # far off the law: must not be read
    add_task(store, 1024)  # recorded, not run yet
    record_task(store, TaskRecord("mlp-old", "vision", "val_accuracy", "maximize", 0.9))
    store.dispose()
    return url


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_the_fit_recovers_each_planted_exponent(swept):
    advice = lr_across_widths(BASE, 1024, db=swept)
    assert advice.task == BASE and advice.fixed == {"depth": 2}
    assert list(advice.tasks) == ["mlp[width=64]", "mlp", "mlp[width=256]", "mlp[width=512]"]
    assert advice.unmeasured == ["mlp[width=1024]"]
    fits = {fit.optimizer: fit for fit in advice.fits}
    assert set(fits) == {"adamw", "lion", "sgd"}
    for optimizer, (_, exponent) in PLANTED.items():
        fit = fits[optimizer]
        assert fit.widths == list(WIDTHS)
        assert fit.exponent == pytest.approx(exponent, rel=0.05)
        assert 0 < fit.residual < 0.05  # the noise: at most 3% off the line
        assert fit.low < fit.predicted_lr < fit.high
        assert fit.predicted_lr == pytest.approx(planted_lr(optimizer, 1024), rel=0.1)


def test_an_in_range_prediction_sits_in_its_interval_near_the_planted_lr(swept):
    advice = lr_across_widths(task_name(256), 192, db=swept)
    for fit in advice.fits:
        if fit.optimizer not in PLANTED:
            continue
        planted = planted_lr(fit.optimizer, 192)
        assert fit.low < fit.predicted_lr < fit.high
        assert fit.low < planted < fit.high
        assert fit.predicted_lr == pytest.approx(planted, rel=0.05)
        assert fit.extrapolated is None and fit.factor is None
        assert "within the measured widths (64, 128, 256 and 512)" in fit.sentence()


def test_the_interval_is_the_fit_s_prediction_interval_by_hand(swept):
    """Widths 64..512 and the adamw lrs as stored: the t(0.95, 2) prediction interval."""
    fit = next(f for f in lr_across_widths(BASE, 1024, db=swept).fits if f.optimizer == "adamw")
    xs = [math.log(w) for w in WIDTHS]
    ys = [math.log(planted_lr("adamw", w) * n) for w, n in zip(WIDTHS, NOISE, strict=True)]
    mx, my = sum(xs) / 4, sum(ys) / 4
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    errors = [y - a - b * x for x, y in zip(xs, ys, strict=True)]
    s = math.sqrt(sum(e * e for e in errors) / 2)
    x0 = math.log(1024)
    half = 2.919986 * s * math.sqrt(1 + 1 / 4 + (x0 - mx) ** 2 / sxx)
    assert fit.exponent == pytest.approx(b)
    assert fit.residual == pytest.approx(math.sqrt(sum(e * e for e in errors) / 4))
    assert (fit.low, fit.high) == (pytest.approx(math.exp(a + b * x0 - half), rel=1e-5),
                                   pytest.approx(math.exp(a + b * x0 + half), rel=1e-5))


def test_extrapolation_is_flagged_with_its_factor(swept):
    fits = {f.optimizer: f for f in lr_across_widths(BASE, 1024, db=swept).fits}
    adamw = fits["adamw"]
    assert adamw.extrapolated == "beyond" and adamw.factor == pytest.approx(2.0)
    sentence = adamw.sentence()
    assert sentence.startswith("at width 1024, adamw's best lr is about ")
    assert sentence.endswith(", extrapolated 2x beyond the widest measured model (512); "
                             f"lr ~ width^{adamw.exponent:.2f}")
    narrow = {f.optimizer: f for f in lr_across_widths(BASE, 16, db=swept).fits}["sgd"]
    assert narrow.extrapolated == "below" and narrow.factor == pytest.approx(4.0)
    assert "extrapolated 4x below the narrowest measured model (64)" in narrow.sentence()
    # further out, a wider interval
    assert narrow.high / narrow.low > fits["sgd"].high / fits["sgd"].low


def test_an_optimizer_at_two_widths_is_too_few(swept):
    lion = {f.optimizer: f for f in lr_across_widths(BASE, 1024, db=swept).fits}["lion"]
    assert lion.law is None and lion.predicted_lr is None
    assert lion.widths == [64, 512] and lion.more_widths == 1
    assert lion.sentence() == ("lion has too few widths for a fit (measured at widths 64 and "
                               "512 only; it needs 3 distinct widths: measure 1 more)")


def test_a_store_with_two_widths_gives_the_too_few_widths_answer(sqlite_url):
    store = open_store(sqlite_url)
    for width in (64, 256):
        add_optimizer(store, add_task(store, width), "adamw", planted_lr("adamw", width))
    store.dispose()
    advice = lr_across_widths(BASE, 1024, db=sqlite_url)
    (fit,) = advice.fits
    assert fit.law is None and fit.widths == [64, 256] and fit.more_widths == 1
    assert advice.text == ("On mlp, adamw has too few widths for a fit (measured at widths 64 "
                           "and 256 only; it needs 3 distinct widths: measure 1 more).")
    shown = invoke("advise", "--task", BASE, "--width", "1024", "--db", sqlite_url)
    assert shown.exit_code == 0 and "too few widths" in shown.output


def test_the_sweep_holds_other_parameters_still(swept):
    """The depth-3 record is another sweep: read only when named, and then alone."""
    deeper = lr_across_widths("mlp[depth=3,width=64]", 1024, db=swept)
    assert deeper.fixed == {"depth": 3} and list(deeper.tasks) == ["mlp[depth=3,width=64]"]
    assert [f.widths for f in deeper.fits] == [[64]]
    assert lr_across_widths("mlp[depth=3]", 1024, db=swept).fixed == {"depth": 3}
    assert lr_across_widths(BASE, 1024, db=swept).fixed == {"depth": 2}  # the base's record


def test_records_differing_in_more_than_width_need_a_name(sqlite_url):
    store = open_store(sqlite_url)
    for depth in (2, 3):
        for width in (64, 256):
            add_optimizer(store, add_task(store, width, depth=depth), "adamw", 1e-3)
    store.dispose()
    with pytest.raises(WidthSweepError, match=r"differ in depth too; .*--task mlp\[depth=\.\.\.]"):
        lr_across_widths(BASE, 1024, db=sqlite_url)  # no record of mlp itself: which depth?
    with pytest.raises(NoRunsError, match="has a width and depth=4"):
        lr_across_widths("mlp[depth=4]", 1024, db=sqlite_url)
    assert lr_across_widths("mlp[depth=3]", 64, db=sqlite_url).fixed == {"depth": 3}


def test_the_cli_prints_the_table_and_the_sentence(swept):
    result = invoke("advise", "--task", BASE, "--width", "1024", "--db", swept)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("optimizer"))
    for column in ("optimizer", "exponent", "residual", "lr at 1024", "5%-95%", "widths"):
        assert column in header
    adamw_row = next(line for line in lines if line.startswith("adamw "))
    assert "-1.0" in adamw_row and "64, 128, 256, 512" in adamw_row
    assert "On mlp, at width 1024, adamw's best lr is about " in result.output
    assert "extrapolated 2x beyond the widest measured model (512)" in result.output
    assert "On mlp, lion has too few widths" in result.output
    assert "recorded without runs yet: mlp[width=1024]" in result.output
    data = json.loads(invoke("advise", "--task", BASE, "--width", "1024", "--json",
                             "--db", swept).output)
    assert data["width"] == 1024 and data["interval"] == [0.05, 0.95]
    sgd = next(o for o in data["optimizers"] if o["optimizer"] == "sgd")
    assert sgd["exponent"] == pytest.approx(-0.5, rel=0.05)
    assert sgd["interval"][0] < sgd["predicted_lr"] < sgd["interval"][1]
    assert sgd["extrapolated"] == "beyond" and sgd["factor"] == pytest.approx(2.0)
    assert [p["width"] for p in sgd["points"]] == list(WIDTHS)


def test_bad_width_requests_are_one_line_errors(swept, sqlite_url):
    zero = invoke("advise", "--task", BASE, "--width", "0", "--db", swept)
    assert zero.exit_code == 2 and "--width" in zero.output
    mixed = invoke("advise", "--task", BASE, "--width", "512", "--prefer", "speed",
                   "--db", swept)
    assert mixed.exit_code == 2 and "--prefer cannot be combined with --width" in mixed.output
    unknown = invoke("advise", "--task", "nosuch", "--width", "512", "--db", swept)
    assert unknown.exit_code == 1
    assert unknown.output.strip().splitlines() == [
        f"Error: no task 'nosuch' in {swept}; run a study first"]
    old = invoke("advise", "--task", "mlp-old", "--width", "512", "--db", swept)
    assert old.exit_code == 1 and "has a width" in old.output and len(
        old.output.strip().splitlines()) == 1
    store = open_store(sqlite_url)
    add_task(store, 64)  # recorded, never run
    store.dispose()
    empty = invoke("advise", "--task", BASE, "--width", "512", "--db", sqlite_url)
    assert empty.exit_code == 1 and empty.output.strip() == (
        f"Error: no runs of mlp at any width in {sqlite_url} (recorded: mlp[width=64]); "
        "run a study first")


def test_student_t_quantiles_match_scipy():
    from scipy.stats import t

    for dof in (*range(1, 13), 30, 101, 2000):
        for probability in (0.95, 0.975, 0.05):
            assert student_t_quantile(probability, dof) == pytest.approx(
                t.ppf(probability, dof), rel=1e-6 if dof <= 1000 else 2e-3)


def test_names_and_a_plain_fit():
    assert task_base("charlm[width=256]") == "charlm" and task_base("charlm") == "charlm"
    assert task_overrides("charlm[depth=4,width=256]") == {"depth": "4", "width": "256"}
    law = fit_power_law([1, 10, 100], [1.0, 0.1, 0.01])
    assert law.exponent == pytest.approx(-1.0) and law.residual == pytest.approx(0.0, abs=1e-12)
    assert law.predict(1000) == pytest.approx(1e-3)
    assert law.interval(1000) == (pytest.approx(1e-3), pytest.approx(1e-3))


def test_an_exact_fit_says_it_has_no_interval():
    points = [WidthPoint(w, f"t{w}", 1e-3, 0.9) for w in (32, 64, 128)]
    law = fit_power_law([p.width for p in points], [p.lr for p in points])
    fit = WidthFit("adam", 256, points, law, law.predict(256), *law.interval(256), "beyond", 2.0)
    assert fit.sentence() == (
        "at width 256, adam's best lr is about 1e-3 (the measured lrs lie exactly on the line: "
        "no spread to size an interval), extrapolated 2x beyond the widest measured model (128); "
        "lr ~ width^0.00")


def test_the_width_advice_imports_neither_torch_optuna_nor_the_plugins(swept):
    """A pure read: the command runs in a fresh process and leaves the heavy modules unloaded."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tuner.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['advise', '--task', 'mlp', '--width', '1024', "
        f"'--db', {swept!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('torch', 'optuna', 'tuner_plugins') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
