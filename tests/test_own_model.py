"""Your own model: tasks by reference (a file, a module), checked code, the builders, the
Python Study API and the shipped example, on real files, real stores and real workers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tuner.cli import cli

ROOT = Path(__file__).resolve().parents[1]

TASK_SOURCE = '''
import torch
from torch import nn

import tuner.task as T


class Blobs(T.Task):
    name = "{name}"
    summary = "two Gaussian blobs, a linear classifier"
    kind = "convex"
    metric = "val_accuracy"
    direction = "maximize"
    target = 0.9
    budget = 20
    eval_every = 10
    batch_size = 32

    def build(self, seed, device):
        generator = torch.Generator().manual_seed(1234)
        x = torch.randn(300, 2, generator=generator)
        y = (x[:, 0] + x[:, 1] > 0).long()
        model = nn.Linear(2, 2)
        return T.Problem(model=model.to(device), train=(x[:200], y[:200]), val=(x[200:], y[200:]))


def make_blobs():
    return Blobs()


blobs = Blobs()
not_a_task = 42
'''


def write_task(folder: Path, name: str, filename: str = "mytask.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(TASK_SOURCE.format(name=name))
    return path


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def tuner_command() -> list[str]:
    beside = Path(sys.executable).with_name("tuner")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "tuner"]


def run_tuner(*args: str, cwd: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        [*tuner_command(), *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )


def sqlite_rows(url: str, query: str) -> list[tuple]:
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize("attribute", ["Blobs", "blobs", "make_blobs"])
def test_reference_forms_load_the_task(tmp_path: Path, attribute: str):
    from tuner.plugin.registry import get_registry

    name = "forms-" + {"Blobs": "class", "blobs": "instance", "make_blobs": "function"}[attribute]
    path = write_task(tmp_path, name)
    task = get_registry().task(f"{path}:{attribute}")
    assert task.name == name
    assert task.code_ref == f"{path}:{attribute}"
    import hashlib

    assert task.code_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_reference_train_study_best_and_changed_code(tmp_path: Path, sqlite_url: str):
    path = write_task(tmp_path / "work", "ref-blobs")
    trained = run_tuner("train", "--task", "mytask.py:Blobs", "--optimizer", "adam",
                        "--param", "lr=0.05", "--json", cwd=path.parent)
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["task"] == "ref-blobs"

    created = run_tuner("study", "create", "mine", "--task", "mytask.py:Blobs",
                        "--optimizers", "adam,sgd", "--trials", "2", "--seeds", "2",
                        "--pruner", "none", "--db", sqlite_url, cwd=path.parent)
    assert created.returncode == 0, created.stderr
    ran = run_tuner("study", "run", "mine", "--workers", "2", "--db", sqlite_url, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "finished: 4/4 trials" in ran.stdout
    record = sqlite_rows(sqlite_url, "SELECT name, code_ref, code_hash FROM tuner_tasks")
    import hashlib

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert record == [("ref-blobs", f"{path}:Blobs", digest)]
    hashes = sqlite_rows(sqlite_url, "SELECT versions FROM tuner_runs")
    assert len(hashes) == 8 and {json.loads(v)["task_code"] for (v,) in hashes} == {digest}

    best = invoke("best", "--task", "ref-blobs", "--json", "--db", sqlite_url)
    assert best.exit_code == 0, best.output
    assert {row["optimizer"] for row in json.loads(best.output)["optimizers"]} == {"adam", "sgd"}
    # the reference names the same task (read from the store's records, nothing imported)
    by_reference = run_tuner("best", "--task", "mytask.py:Blobs", "--json", "--db", sqlite_url,
                             cwd=path.parent)
    assert by_reference.returncode == 0, by_reference.stderr
    assert json.loads(by_reference.stdout)["optimizers"] == json.loads(best.output)["optimizers"]
    unknown = run_tuner("best", "--task", "other.py:Blobs", "--db", sqlite_url, cwd=path.parent)
    assert unknown.returncode != 0 and "no study in" in unknown.stderr

    # the file changes after the study was created: workers refuse, nothing is written
    invoke("study", "create", "again", "--task", f"{path}:Blobs", "--optimizers", "adam",
           "--trials", "1", "--seeds", "1", "--db", sqlite_url)
    path.write_text(path.read_text() + "\n# edited\n")
    before = sqlite_rows(sqlite_url, "SELECT count(*) FROM tuner_trials")
    refused = run_tuner("worker", "again", "--db", sqlite_url, cwd=tmp_path)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        f"Error: the code of task 'ref-blobs' ({path}) changed since study 'again' was "
        "created; restore it, or run with --allow-changed"
    ]
    assert sqlite_rows(sqlite_url, "SELECT count(*) FROM tuner_trials") == before
    allowed = run_tuner("study", "run", "again", "--allow-changed", "--db", sqlite_url,
                        cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    new_digest = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = sqlite_rows(sqlite_url, "SELECT r.versions FROM tuner_runs r JOIN tuner_studies s "
                       "ON r.study_id = s.id WHERE s.name = 'again'")
    assert [json.loads(v)["task_code"] for (v,) in rows] == [new_digest]


def test_module_reference_in_a_study_file_runs_with_workers(tmp_path: Path, sqlite_url: str,
                                                          monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "lib" / "mymodels"
    write_task(package, "mod-blobs", "tasks.py")
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "lib"))
    study_file = tmp_path / "study.toml"
    study_file.write_text(textwrap.dedent('''
        name = "by-module"
        task = "mymodels.tasks:make_blobs"
        optimizers = ["adam"]
        trials = 2
        seeds = 1
        pruner = "none"
    '''))
    created = invoke("study", "create", "--from", str(study_file), "--db", sqlite_url)
    assert created.exit_code == 0, created.output
    ran = run_tuner("study", "run", "by-module", "--workers", "2", "--db", sqlite_url,
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "finished: 2/2 trials" in ran.stdout
    assert sqlite_rows(sqlite_url, "SELECT code_ref FROM tuner_tasks") == [
        ("mymodels.tasks:make_blobs",)
    ]


def test_study_file_reference_is_relative_to_the_file(tmp_path: Path, sqlite_url: str):
    path = write_task(tmp_path / "project", "beside-blobs")
    (tmp_path / "project" / "study.toml").write_text(
        'name = "beside"\ntask = "mytask.py:Blobs"\noptimizers = ["adam"]\ntrials = 1\n'
        "seeds = 1\n"
    )
    created = invoke("study", "create", "--from", str(tmp_path / "project" / "study.toml"),
                     "--db", sqlite_url)
    assert created.exit_code == 0, created.output
    assert sqlite_rows(sqlite_url, "SELECT code_ref FROM tuner_tasks") == [(f"{path}:Blobs",)]


BAD_REFERENCES = {
    "missing file": ("nowhere.py:Blobs", "no file"),
    "no such attribute": ("mytask.py:Nope", "no attribute 'Nope' (tasks in it: Blobs, blobs)"),
    "not a task": ("mytask.py:not_a_task", "int is not a tuner.Task"),
    "import error": ("broken.py:Blobs", "importing broken.py raised ZeroDivisionError"),
    "no module": ("no_such_module_here.tasks:Blobs", "no module named 'no_such_module_here'"),
    "name of a plugin": ("clash.py:Blobs", "task name 'quadratic' is already held by plugin"),
}


@pytest.mark.parametrize("case", sorted(BAD_REFERENCES))
def test_bad_references_are_one_line_and_write_nothing(
    case: str, tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
):
    reference, expected = BAD_REFERENCES[case]
    write_task(tmp_path, "bad-ref-blobs")
    (tmp_path / "broken.py").write_text("import math\nx = 1 / 0\n")
    write_task(tmp_path, "quadratic", "clash.py")
    monkeypatch.chdir(tmp_path)
    for args in (["train", "--task", reference, "--optimizer", "adam"],
                 ["study", "create", "bad", "--task", reference, "--optimizers", "adam",
                  "--trials", "1", "--seeds", "1", "--db", sqlite_url]):
        result = invoke(*args)
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: task reference {reference!r}")
        assert expected in lines[0]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_a_name_held_in_the_store_by_other_code_is_refused(tmp_path: Path, sqlite_url: str):
    first = write_task(tmp_path / "a", "held-blobs")
    assert invoke("study", "create", "one", "--task", f"{first}:Blobs", "--optimizers", "adam",
                  "--trials", "1", "--seeds", "1", "--db", sqlite_url).exit_code == 0
    second = write_task(tmp_path / "b", "held-blobs")
    from tuner.task import reference as task_reference

    task_reference._loaded.clear()  # another process: the first file was never loaded there
    refused = invoke("study", "create", "two", "--task", f"{second}:Blobs", "--optimizers",
                     "adam", "--trials", "1", "--seeds", "1", "--db", sqlite_url)
    assert refused.exit_code != 0
    assert refused.output.strip() == (
        f"Error: task name 'held-blobs' ({second}:Blobs) is already held in the store by "
        f"{first}:Blobs; give the task another name"
    )
    assert sqlite_rows(sqlite_url, "SELECT name FROM tuner_studies") == [("one",)]


class CountingDataset:
    """A map-style dataset over two tensors that records every index it is asked for."""

    def __init__(self, inputs, labels):
        self.inputs, self.labels, self.reads = inputs, labels, []

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __getitem__(self, index: int):
        self.reads.append(index)
        return self.inputs[index], self.labels[index]


def blob_data():
    import torch

    generator = torch.Generator().manual_seed(7)
    x = torch.randn(600, 4, generator=generator)
    y = (x.sum(dim=1) > 0).long()
    return x, y


def builder_task(name: str, datasets: list[CountingDataset] | None = None):
    import torch

    from tuner.task.builders import from_function

    def build(seed):
        x, y = blob_data()
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        if datasets is None:
            return model, (x[:500], y[:500]), (x[500:], y[500:])
        dataset = CountingDataset(x[:500], y[:500])
        datasets.append(dataset)
        return model, dataset, (x[500:], y[500:])

    return from_function(name=name, build=build, metric="val_accuracy", direction="maximize",
                         budget=12, batch_size=16, eval_every=4, target=0.9)


def test_builder_and_dataset_task_same_seed_same_run_and_batches_read_lazily():
    from tuner.training.loop import train

    tensors = builder_task("builder-tensors")
    datasets: list[CountingDataset] = []
    lazy = builder_task("builder-dataset", datasets)
    runs = {
        (kind, seed): train(task, "sgd", {"lr": 0.1}, seed)
        for kind, task in (("tensors", tensors), ("dataset", lazy)) for seed in (0, 0, 1)
    }
    assert all(run.status == "complete" for run in runs.values())
    # the dataset path draws the same batches as the tensors: identical curves
    for seed in (0, 1):
        assert len(runs[("tensors", seed)].curve) == 3
        assert [p.train_loss for p in runs[("tensors", seed)].curve] == [
            p.train_loss for p in runs[("dataset", seed)].curve
        ]
    first, again, other = datasets
    # each step reads its batch and nothing else: 12 steps x 16 examples of 500
    assert len(first.reads) == 12 * 16 < len(first)
    assert first.reads == again.reads  # same seed, same order
    assert first.reads != other.reads  # another seed, another order
    assert sorted(first.reads) != first.reads


def test_builder_checks_what_build_returns():
    from tuner.task.builders import from_function
    from tuner.training.loop import train

    task = from_function(name="builder-bad", build=lambda seed: "model", budget=5)
    result = train(task, "sgd", {"lr": 0.1}, 0)
    assert result.status == "failed"
    assert "build() must return (model, train, val)" in result.error


def test_example_own_model_study_with_two_workers_then_advice(tmp_path: Path, sqlite_url: str):
    """The README's "Tuning your own model", as written: a study of the example file, run with
    2 workers, advice printed."""
    created = run_tuner("study", "create", "spirals", "--task",
                        "examples/own-model/model.py:task", "--optimizers", "adam,sgd",
                        "--trials", "2", "--seeds", "1", "--budget", "40", "--pruner", "none",
                        "--db", sqlite_url, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    ran = run_tuner("study", "run", "spirals", "--workers", "2", "--db", sqlite_url,
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    advice = run_tuner("advise", "--task", "spirals-mlp", "--db", sqlite_url, cwd=tmp_path)
    assert advice.returncode == 0, advice.stderr
    assert "spirals-mlp" in advice.stdout and ("adam" in advice.stdout or "sgd" in advice.stdout)


def test_python_study_api(tmp_path: Path, sqlite_url: str):
    import tuner
    from tuner.plugin.registry import get_registry

    path = write_task(tmp_path, "api-blobs")
    task = get_registry().task(f"{path}:blobs")  # an object workers can rebuild
    study = tuner.Study.create("api", task=task, optimizers=["sgd"], trials=2, seeds=1,
                               budget=10, pruner="none", db=sqlite_url)
    report = study.run(workers=1, batch=2)
    assert report.stopped == "finished"
    again = tuner.Study.load("api", db=sqlite_url)
    assert again.task == "api-blobs" and again.status().done == 2
    from tuner.store import open_store
    from tuner.store.models import Run

    store = open_store(sqlite_url, readonly=True)
    with store.session() as session:  # the two trials trained together, as one batch
        assert [r.options["batch"] for r in session.query(Run)] == [2, 2]
    store.dispose()
    ranking = again.best()
    assert [row.optimizer for row in ranking.optimizers] == ["sgd"]
    assert again.note == ""
    again.note = "batched: two trials trained together"
    assert tuner.Study.load("api", db=sqlite_url).note == "batched: two trials trained together"
    from tuner.errors import TunerError

    with pytest.raises(TunerError, match="at most 10,000 characters"):
        again.note = "x" * 10_001
    assert again.note == "batched: two trials trained together"
    tuned = tuner.Study.create("api-tuned", task=task, optimizers=["sgd"], trials=1, seeds=1,
                               budget=10, db=sqlite_url,
                               training={"warmup": 3, "batch_size": (8, 32)})
    assert tuned.spec().training == {"warmup": 3, "batch_size": {"range": [8, 32]}}


def test_python_study_api_refuses_a_task_defined_in_main(tmp_path: Path, sqlite_url: str):
    script = tmp_path / "notebook.py"
    script.write_text(TASK_SOURCE.format(name="main-blobs") + textwrap.dedent(f'''
        import tuner
        from tuner.errors import TunerError
        try:
            tuner.Study.create("nb", task=Blobs(), optimizers=["adam"], trials=1,
                               db={sqlite_url!r})
        except TunerError as error:
            print(error)
    '''))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    # no variable holds the object, but its class, built with no arguments, is the same task
    assert result.stdout.strip() == (
        "worker processes rebuild task 'main-blobs' from a reference, and cannot import this "
        'script as __main__; pass task=__file__ + ":Blobs" (they import the file: keep the '
        'code that creates and runs the study under if __name__ == "__main__":)'
    )
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


SCRIPT_TASK = '''
import torch
from torch import nn

import tuner
from tuner.errors import TunerError
from tuner.task.builders import from_function


def build(seed):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(120, 3, generator=generator)
    y = (x[:, 0] > 0).long()
    return nn.Linear(3, 2), (x[:100], y[:100]), (x[100:], y[100:])


wine = from_function(name="script-wine", build=build, budget=6, batch_size=20, eval_every=3)
'''


def test_a_task_built_in_a_script_is_answered_with_the_reference_that_works(
    tmp_path: Path, sqlite_url: str
):
    """from_function's object (a class of tuner's own) in a script: the error names the
    script's variable, never tuner's modules, and the reference it gives trains with a
    worker."""
    script = tmp_path / "train_wine.py"
    script.write_text(SCRIPT_TASK + textwrap.dedent(f'''
        if __name__ == "__main__":
            try:
                tuner.Study.create("by-object", task=wine, optimizers=["sgd"], trials=1,
                                   db={sqlite_url!r})
            except TunerError as error:
                print(error)
            study = tuner.Study.create("by-file", task=__file__ + ":wine", optimizers=["sgd"],
                                       trials=1, pruner="none", db={sqlite_url!r})
            print(study.run(workers=1).stopped)
    '''))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    refused, finished = result.stdout.strip().splitlines()
    assert 'pass task=__file__ + ":wine"' in refused and "tuner." not in refused
    assert 'if __name__ == "__main__":' in refused
    assert finished == "finished"
    assert sqlite_rows(sqlite_url, "SELECT task, status FROM tuner_runs") == [
        ("script-wine", "complete")
    ]
    assert sqlite_rows(sqlite_url, "SELECT name FROM tuner_studies") == [("by-file",)]


def test_a_script_that_loads_itself_at_import_is_told_to_guard_it(tmp_path: Path,
                                                                   sqlite_url: str):
    script = tmp_path / "unguarded.py"
    script.write_text(SCRIPT_TASK + textwrap.dedent(f'''
        tuner.Study.create("loop", task=__file__ + ":wine", optimizers=["sgd"], trials=1,
                           db={sqlite_url!r})
    '''))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith(
        f"task reference '{script}:wine': importing unguarded.py loads the same reference "
        'again; keep the code that creates or runs a study under if __name__ == "__main__":'
    )
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_a_task_without_a_kind_is_no_kind_and_gets_no_kind_preset(tmp_path: Path,
                                                                   sqlite_url: str):
    from tuner.plugin.registry import get_registry
    from tuner.task.loading import TaskReferenceError

    path = tmp_path / "kinds.py"
    path.write_text(SCRIPT_TASK + textwrap.dedent('''
        sequence = from_function(name="kind-sequence", build=build, budget=6, batch_size=20,
                                 kind="sequence")
        wrong = from_function(name="kind-wrong", build=build, kind="mlp")
    '''))
    shown = invoke("tasks", "show", f"{path}:wine", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["kind"] is None
    table = invoke("tasks", "show", f"{path}:wine")
    assert "convex" not in table.output
    assert next(line.split() for line in table.output.splitlines()
                if line.startswith("kind")) == ["kind", "-"]
    with pytest.raises(TaskReferenceError, match="kind must be one of analytic, convex, "
                       "vision, sequence, sparse, or None"):
        get_registry().task(f"{path}:wrong")

    for study, attribute in (("kindless", "wine"), ("sequence", "sequence")):
        created = invoke("study", "create", study, "--task", f"{path}:{attribute}",
                         "--optimizers", "lion", "--trials", "1", "--seeds", "1",
                         "--pruner", "none", "--db", sqlite_url)
        assert created.exit_code == 0, created.output
    assert sorted(sqlite_rows(sqlite_url, "SELECT name, kind FROM tuner_tasks")) == [
        ("kind-sequence", "sequence"), ("script-wine", None)
    ]
    # the recommended first trial: Lion's plain values without a kind, its preset with one
    import tuner

    lion = get_registry().optimizer("lion")
    assert lion.recommended_for(None) != lion.recommended_for("sequence")
    for study, kind in (("kindless", None), ("sequence", "sequence")):
        first = tuner.Study.load(study, db=sqlite_url).spec().initial_configs["lion"][0]
        assert first["params"] == lion.recommended_for(kind)


WINE_FILE = '''
from pathlib import Path

Path(__file__).with_name("imported").write_text("the file ran")  # a hint must not import it

import tuner.task as T
from tuner.task.builders import from_function


def build(seed):
    raise RuntimeError("never built here")


task = from_function(name="wine-mlp", build=build)
'''


def test_a_file_named_without_its_task_is_answered_with_the_names_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    (tmp_path / "wine.py").write_text(WINE_FILE)
    result = run_tuner("train", "--task", "wine.py", "--optimizer", "adam", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: unknown task 'wine.py' (a task in a file or a module is named "
        "path/to/file.py:NAME or package.module:NAME); did you mean wine.py:task?"
    ]
    monkeypatch.chdir(tmp_path)
    for written, shown in (("wine", "wine.py"), (str(tmp_path / "wine.py"), None)):
        for args in (["train", "--task", written, "--optimizer", "adam"],
                     ["study", "create", "w", "--task", written, "--optimizers", "adam",
                      "--trials", "1", "--seeds", "1", "--db", f"sqlite:///{tmp_path / 'w.db'}"],
                     ["tasks", "show", written]):
            refused = invoke(*args)
            assert refused.exit_code == 1
            lines = refused.output.strip().splitlines()
            assert len(lines) == 1 and f"did you mean {shown or written}:task?" in lines[0]
    assert not (tmp_path / "imported").exists()
    assert not (tmp_path / "w.db").exists()


def test_a_module_named_without_its_task_is_answered_without_importing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    package = tmp_path / "shapes"
    package.mkdir()
    (package / "__init__.py").write_text(
        'from pathlib import Path\nPath(__file__).with_name("imported").write_text("ran")\n'
    )
    (package / "models.py").write_text(TASK_SOURCE.format(name="shapes-blobs"))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = invoke("train", "--task", "shapes.models", "--optimizer", "adam")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unknown task 'shapes.models' (a task in a file or a module is named "
        "path/to/file.py:NAME or package.module:NAME); did you mean shapes.models:blobs? "
        "(tasks in it: blobs, make_blobs, Blobs)"
    ]
    assert not (package / "imported").exists() and "shapes" not in sys.modules
    nothing = invoke("train", "--task", "shapes.nothing", "--optimizer", "adam")
    assert "did you mean shapes.nothing:NAME?" in nothing.output
    plain = invoke("train", "--task", "digits-mpl", "--optimizer", "adam")
    assert plain.exit_code == 1
    assert "choose from: " in plain.output and "digits-mlp" in plain.output
    assert "or a task of your own: path/to/file.py:NAME or package.module:NAME" in plain.output


CANDIDATES_SOURCE = '''
import tuner
import tuner.task as T
from tuner.task.contract import Task
from tuner.task.builders import from_function


class Base(T.Task):
    """No name: a base for the others, not a task by itself."""


class Digits(Base):
    name = "digits-x"


class Other:
    name = "not a task"


def make() -> "tuner.Task":
    ...


def make_small():
    return Digits()


def helper():
    return 3


task = from_function(name="x", build=None)
typed: Task = Digits()
_private = Digits()
number = 3
'''


def test_task_candidates_are_read_from_the_source(tmp_path: Path):
    from tuner.task.hints import task_candidates

    path = tmp_path / "many.py"
    path.write_text(CANDIDATES_SOURCE)
    assert task_candidates(path) == ["task", "typed", "make", "make_small", "Digits"]
    (tmp_path / "broken.py").write_text("def (:\n")
    assert task_candidates(tmp_path / "broken.py") == []
    assert task_candidates(tmp_path / "missing.py") == []


NO_TARGET_FILE = '''
import torch

from tuner.task.builders import from_function


def build(seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    return torch.nn.Linear(3, 1), (x[:48], y[:48]), (x[48:], y[48:])


task = from_function(name="no-target", build=build, budget=4, batch_size=16, eval_every=2)
'''


def test_train_names_no_target_for_a_task_without_one(tmp_path: Path):
    (tmp_path / "plain.py").write_text(NO_TARGET_FILE)
    trained = invoke("train", "--task", f"{tmp_path / 'plain.py'}:task", "--optimizer", "sgd",
                     "--param", "lr=0.01", "--threads", "1")
    assert trained.exit_code == 0, trained.output
    assert "complete after 4 steps" in trained.output
    assert "not reached" not in trained.output  # was "target nan not reached"
