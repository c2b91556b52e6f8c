"""scripts/prerequisites, the front door of `make demo`, `make test` and `make bench`: run on a
PATH of stand-in tools, as a user who cannot install (PREREQUISITES_UID) or as root with a
recording stand-in for apt-get. No package is ever installed here."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "prerequisites"
# Debian's package for each tool the script looks for.
PACKAGES = {
    "make": "make",
    "javac": "default-jdk-headless",
    "mvn": "maven",
    "go": "golang-go",
    "tmux": "tmux",
    "prometheus": "prometheus",
}
BASICS = ("bash", "id", "awk", "sed", "head")  # what the script itself runs


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def toolbox(tmp_path: Path, tools: set[str], java_version: str = "17") -> Path:
    """A bin dir holding the script's basics and stand-ins for ``tools`` (names of PACKAGES,
    plus "python3.11"); an apt-get that logs its arguments and "installs" stand-ins."""
    bin_dir, store = tmp_path / "bin", tmp_path / "store"
    bin_dir.mkdir()
    store.mkdir()
    for name in BASICS:
        found = shutil.which(name)
        assert found, f"{name} is needed to run the script"
        (bin_dir / name).symlink_to(found)
    bodies = {
        "make": "exit 0",
        "javac": "exit 0",
        "java": f'echo "    java.specification.version = {java_version}" >&2',
        "mvn": 'echo "Apache Maven 3.9.9"',
        "go": "exit 0",
        "tmux": "exit 0",
        "prometheus": "exit 0",
        # the interpreter of these tests: 3.11 or 3.12, with venv
        "python3.11": f'exec "{sys.executable}" "$@"',
    }
    for tool, body in bodies.items():
        stand_in(store, tool, body)
    for tool in tools:
        shutil.copy2(store / tool, bin_dir / tool)
        if tool == "javac":
            shutil.copy2(store / "java", bin_dir / "java")
    # apt-get: logs each call; `install` puts the packages' tools (from the store) in place
    cp = shutil.which("cp")
    files = {package: [tool] for tool, package in PACKAGES.items()}
    files["default-jdk-headless"].append("java")
    installs = "\n".join(
        f"    {package}) "
        + "; ".join(f'{cp} "{store}/{tool}" "{bin_dir}/"' for tool in names)
        + " ;;"
        for package, names in files.items()
    )
    stand_in(
        bin_dir,
        "apt-get",
        f'echo "$*" >> "{tmp_path}/apt-get.log"\nfor arg; do case $arg in\n{installs}\nesac; done',
    )
    return bin_dir


def run(
    bin_dir: Path, *args: str, uid: str = "1000", program: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bin_dir), "PREREQUISITES_UID": uid, "LANG": "C.UTF-8"}
    return subprocess.run(
        [str(bin_dir / "bash"), str(program), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def apt_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "apt-get.log"
    return log.read_text().splitlines() if log.exists() else []


EVERYTHING = {*PACKAGES, "python3.11"}


def test_with_everything_there_it_says_nothing(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING)
    result = run(bin_dir, "--python", "test")
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert result.stdout == "python3.11\n"
    assert apt_calls(tmp_path) == []


@pytest.mark.parametrize(
    ("goal", "absent", "named"),
    [
        ("test", {"mvn", "tmux"}, "maven tmux"),
        ("test", {"make", "javac", "go"}, "make default-jdk-headless golang-go"),
        ("bench", {"javac", "mvn"}, "default-jdk-headless maven"),
        ("demo", {"mvn"}, "maven"),
        ("test", {"python3.11"}, "python3 python3-venv"),
    ],
)
def test_a_user_gets_one_line_naming_the_packages_and_the_command(
    tmp_path: Path, goal: str, absent: set[str], named: str
) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - absent)
    result = run(bin_dir, goal)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"prerequisites: make {goal} needs {named}, missing here; "
        f"install them with: sudo apt-get install -y {named}"
    ]
    assert apt_calls(tmp_path) == [], "a user's run must not call apt-get"


def test_a_python_without_venv_needs_python3_venv(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - {"python3.11"})
    stand_in(bin_dir, "python3.11", "exit 1")  # as Debian's python3.11 without python3-venv
    result = run(bin_dir, "test")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith("sudo apt-get install -y python3-venv")


def test_the_demo_needs_neither_go_nor_tmux(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - {"go", "tmux"})
    assert run(bin_dir, "demo").returncode == 0
    assert run(bin_dir, "test").returncode == 1


def test_root_installs_what_is_missing_with_apt_get(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - {"javac", "tmux"})
    result = run(bin_dir, "--python", "test", uid="0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "python3.11\n"
    assert apt_calls(tmp_path) == [
        "-o DPkg::Lock::Timeout=300 update -qq",  # another install's lock is waited for
        "-o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "
        "default-jdk-headless tmux",
    ]
    assert "installing them with apt-get" in result.stderr


def test_root_is_told_when_the_install_did_not_help(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - {"tmux"})
    stand_in(bin_dir, "apt-get", "exit 0")  # "succeeds" and installs nothing
    result = run(bin_dir, "test", uid="0")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "prerequisites: apt-get installed tmux, but they are still not on PATH"
    )


def test_an_old_java_is_one_line(tmp_path: Path) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING, java_version="11")
    result = run(bin_dir, "test")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "prerequisites: Java 11 found; the local Kafka broker needs Java 17+: "
        "put a JDK 17+ first on PATH"
    ]


@pytest.mark.parametrize("goal", ["demo", "test", "bench"])
def test_make_runs_it_before_anything_else(tmp_path: Path, goal: str) -> None:
    bin_dir = toolbox(tmp_path, EVERYTHING - {"mvn", "tmux"} | {"make"})
    real_make = shutil.which("make")
    assert real_make
    (bin_dir / "make").unlink()
    (bin_dir / "make").symlink_to(real_make)
    env = {"PATH": str(bin_dir), "PREREQUISITES_UID": "1000", "LANG": "C.UTF-8"}
    # a copy of the tree's make files and scripts: nothing of the checkout can be touched
    work = tmp_path / "clone"
    for name in ("Makefile", "pyproject.toml", "scripts", "manifests", "tests/flink", "bench"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, work / name, ignore=shutil.ignore_patterns("results", "*.pyc"))
        else:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    result = subprocess.run(
        ["make", "--no-print-directory", goal],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    named = "maven" if goal != "test" else "maven tmux"
    assert result.returncode != 0
    assert result.stdout == "", f"make ran something first: {result.stdout}"
    assert result.stderr.splitlines()[0] == (
        f"prerequisites: make {goal} needs {named}, missing here; "
        f"install them with: sudo apt-get install -y {named}"
    )
    assert not (work / ".venv").exists()
