"""The commands the manifests run exist and accept their arguments.

Each container of the project's image runs a program of this package (the Faust worker, the
generator, the viewer), checked here with the environment the pod would get; containers of the
Kafka image run a shell script mounted from a ConfigMap, checked for syntax.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.rendering import (
    OVERLAYS,
    REPO,
    Doc,
    container_env,
    find,
    mounted_files,
    name_of,
    pod_specs,
    secret_files,
    uses_project_image,
    with_local_secret_files,
    workload,
)

VENV_BIN = Path(sys.executable).parent
WORKER_COMMAND = ["faust", "-A", "app", "worker", "-l", "info"]
TOPICS_COMMAND = ["faust", "-A", "app", "create-topics"]  # the topics Job
# `python -m <module>` and its console script: the programs of the image besides the worker.
MODULES = {
    "generator": "fraud-generator",
    "viewer": "fraud-viewer",
    "viewer.verify": "fraud-verify",
}


def _run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The image's PATH starts with its venv, as this one's does; cwd is empty, like /srv.
    full_env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8", **env}
    return subprocess.run(
        command, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _local(command: list[str]) -> list[str]:
    """The manifest's command as this venv runs it: `python` and scripts from the venv."""
    program = sys.executable if command[0] == "python" else str(VENV_BIN / command[0])
    return [program, *command[1:]]


def _program(command: list[str]) -> str:
    """The program a project container runs: 'faust', a `-m` module or a console script."""
    if command[:2] == ["python", "-m"]:
        return command[2]
    return command[0]


def test_console_scripts_point_at_callables() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == set(MODULES.values())
    for target in scripts.values():
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_runs_a_known_command(
    rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path
) -> None:
    docs = rendered[overlay]
    for doc, spec in pod_specs(docs):
        for container in spec["containers"]:
            command = [*container.get("command", []), *container.get("args", [])]
            where = f"{name_of(doc)} container {container['name']}"
            assert command, f"{where} relies on the image's default command: name it"
            if uses_project_image(container):
                program = _program(command)
                known = {"faust", *MODULES, *MODULES.values()}
                assert program in known, f"{where} runs {command}: not a program of the image"
                if program == "faust":
                    assert command in (WORKER_COMMAND, TOPICS_COMMAND), f"{where} runs {command}"
                continue
            # Other images (apache/kafka) run a script that this tree mounts.
            assert command[0] == "/bin/sh" and len(command) == 2, f"{where} runs {command}"
            files = mounted_files(docs, spec, container)
            assert command[1] in files, f"{where} runs {command[1]}, which no ConfigMap mounts"
            script = tmp_path / Path(command[1]).name
            script.write_text(files[command[1]])
            syntax = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
            assert syntax.returncode == 0, f"{command[1]}: {syntax.stderr}"


def test_worker_command_loads_the_app(rendered: dict[str, list[Doc]], tmp_path: Path) -> None:
    # One overlay is enough here: test_manifests checks every overlay's settings in-process.
    docs = rendered["dev"]
    _, pod, container = workload(docs, "StatefulSet", "fraud-worker")
    env = container_env(docs, container, {"metadata.name": "fraud-worker-0"})
    env = with_local_secret_files(env, secret_files(docs, pod, container), tmp_path, stand_in="")
    env["DATA_DIR"] = str(tmp_path / "data")  # the pod's volume; nothing is written to it here
    command = _local(container["command"])
    assert Path(command[0]).is_file(), f"{command[0]} missing: is faust-streaming installed?"
    # `faust -A app tables` imports the app with the pod's settings, registers its agents and
    # tables, and needs no broker; `worker --help` shows the worker command exists.
    tables = _run([*command[:3], "tables"], env, tmp_path)
    assert tables.returncode == 0, f"faust -A app tables failed:\n{tables.stderr}"
    worker = _run([*command[:4], "--help"], env, tmp_path)
    assert worker.returncode == 0, f"faust -A app worker --help failed:\n{worker.stderr}"
    levels = re.search(r"--loglevel \[([a-z|]+)\]", worker.stdout)
    assert levels and command[command.index("-l") + 1] in levels.group(1).split("|")


def test_generator_runs_with_the_manifest_arguments(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    docs = rendered["dev"]
    _, _, container = workload(docs, "Deployment", "fraud-generator")
    env = container_env(docs, container)
    # The same flags, to stdout instead of Kafka, and only a few records.
    command = [*_local(container["command"]), "--stdout", "--count", "5", "--no-progress"]
    result = _run(command, env, tmp_path)
    assert result.returncode == 0, f"{command} failed:\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and all(line.count(";") == 3 for line in lines), result.stdout


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_viewer_arguments_give_plain_lines_on_the_configured_topic(
    rendered: dict[str, list[Doc]], overlay: str, tmp_path: Path
) -> None:
    from viewer.cli import OutputMode, parse_settings

    docs = rendered[overlay]
    _, _, container = workload(docs, "Deployment", "fraud-viewer")
    env = container_env(docs, container)
    command = container["command"]
    assert command[:3] == ["python", "-m", "viewer"]
    settings = parse_settings(command[3:], env, stdout_is_terminal=False)
    assert settings.output is OutputMode.PLAIN, "kubectl logs needs plain lines"
    config = find(docs, "ConfigMap", "fraud-config")["data"]
    assert (settings.topic, settings.bootstrap) == (
        config["FRAUD_TOPIC"],
        config["KAFKA_BOOTSTRAP"],
    )
    result = _run([*_local(command), "--help"], env, tmp_path)
    assert result.returncode == 0, result.stderr
