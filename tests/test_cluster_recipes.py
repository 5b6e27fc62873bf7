"""The cluster recipes of docs/cluster.md are complete files that work: the Slurm array script
runs here as one element against PostgreSQL, the Kubernetes Job's command is run as written,
and the Ray recipe's tuner commands parse with the CLI's own options."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml
from test_workers import check_consistent, create, tuner_command

from tuner.cli import cli

RECIPES = Path(__file__).resolve().parent.parent / "docs" / "recipes"


def _environment(url: str) -> dict[str, str]:
    """This environment with the study's database, and the venv's ``tuner`` first on PATH."""
    bin_dir = str(Path(tuner_command()[0]).parent) if len(tuner_command()) == 1 else None
    path = os.environ.get("PATH", "")
    return {**os.environ, "TUNER_DB": url, "PATH": f"{bin_dir}:{path}" if bin_dir else path}


@pytest.mark.postgres
def test_slurm_array_element_completes_a_trial(postgres_url: str):
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    create(postgres_url, "slurm-demo", "--task", "quadratic", "--optimizers", "adam",
           "--trials", "1", "--seeds", "1", "--budget", "20")
    result = subprocess.run(
        ["bash", str(RECIPES / "slurm-array.sh"), "slurm-demo"],
        env={**_environment(postgres_url), "SLURM_ARRAY_TASK_ID": "0",
             "SLURM_CPUS_PER_TASK": "1"},
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "array element 0" in result.stdout
    assert "Study 'slurm-demo' finished: 1/1 trials" in result.stdout
    trials = check_consistent(postgres_url, "slurm-demo")
    assert [t.status for t in trials["adam"]] == ["complete"]


def test_slurm_script_refuses_to_start_without_a_database():
    result = subprocess.run(
        ["bash", str(RECIPES / "slurm-array.sh"), "any"],
        env={key: value for key, value in os.environ.items() if key != "TUNER_DB"},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode != 0 and "set TUNER_DB" in result.stderr


def _job() -> dict:
    return yaml.safe_load((RECIPES / "kubernetes-job.yaml").read_text())


def test_kubernetes_job_has_the_expected_fields():
    job = _job()
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["parallelism"] >= 2 and spec["completions"] == spec["parallelism"]
    assert spec["backoffLimit"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] in ("OnFailure", "Never")
    (container,) = pod["containers"]
    assert container["command"][:2] == ["tuner", "worker"]
    (database,) = [item for item in container["env"] if item["name"] == "TUNER_DB"]
    assert database["valueFrom"]["secretKeyRef"] == {"name": "tuner-db", "key": "url"}
    threads = container["command"][container["command"].index("--threads") + 1]
    assert container["resources"]["requests"]["cpu"] == threads


@pytest.mark.postgres
def test_kubernetes_job_command_completes_the_study(postgres_url: str):
    (container,) = _job()["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    study = command[2]
    create(postgres_url, study, "--task", "quadratic", "--optimizers", "adam,sgd",
           "--trials", "2", "--seeds", "1", "--budget", "20")
    result = subprocess.run(
        [*tuner_command(), *command[1:]], env=_environment(postgres_url),
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Study '{study}' finished: 4/4 trials" in result.stdout
    check_consistent(postgres_url, study)


def _tuner_commands(script: Path) -> list[list[str]]:
    """The ``tuner ...`` commands of a shell script (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("tuner ")]


def test_ray_recipe_is_shell_and_its_commands_parse():
    script = RECIPES / "ray-cluster.sh"
    assert subprocess.run(["bash", "-n", str(script)], timeout=30).returncode == 0
    assert "ray start --head" in script.read_text()
    commands = _tuner_commands(script)
    assert [command[:2] for command in commands] == [["study", "create"], ["study", "run"]]
    for words in commands:
        group = cli.commands[words[0]]
        assert isinstance(group, click.Group)
        command = group.commands[words[1]]
        arguments = [word.replace("$TUNER_DB", "postgresql://db/tuner") for word in words[2:]]
        with command.make_context(words[1], arguments) as context:  # parses, runs nothing
            params = context.params
    assert params["backend"] == "ray" and params["address"] == "auto"
    assert params["gpus_per_worker"] == 0.25 and params["workers"] == 8


def test_cluster_doc_links_every_recipe():
    doc = (RECIPES.parent / "cluster.md").read_text()
    for recipe in RECIPES.iterdir():
        assert f"recipes/{recipe.name}" in doc, recipe.name
