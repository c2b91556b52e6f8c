"""The security flags of the generator, the viewer and fraud-verify: same names, same variables,
flags over variables, no password flag, and no secret in ``--help``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_security import SecurityError
from kafka_security.arguments import FLAGS, add_security_arguments, security_from_args

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "never-in-help-9f3a"


def parse(argv: list[str], env: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_security_arguments(parser)
    args = parser.parse_args(argv)
    security_from_args(args, env)  # valid
    return args


def test_a_flag_wins_over_its_variable_and_the_password_comes_from_the_environment() -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_SASL_USERNAME": "someone",
        "KAFKA_SASL_PASSWORD": PASSWORD,
    }
    args = parse(["--security-protocol", "SASL_SSL", "--sasl-username", "fraud"], env)
    security = security_from_args(args, env)
    assert (security.protocol, security.username) == ("SASL_SSL", "fraud")
    assert security.password is not None and security.password.reveal() == PASSWORD


def test_a_bad_flag_is_the_same_error_as_a_bad_variable() -> None:
    args = argparse.Namespace(security_protocol="SASL_PLAINTEXT")
    with pytest.raises(SecurityError, match="SASL_PLAINTEXT is not supported"):
        security_from_args(args, {})


def test_there_is_no_password_flag() -> None:
    parser = argparse.ArgumentParser()
    add_security_arguments(parser)
    flags = {option for action in parser._actions for option in action.option_strings}
    assert "--sasl-password" not in flags
    assert set(FLAGS) == {action.dest for action in parser._actions} - {"help"}


@pytest.mark.parametrize("program", ["generator", "viewer", "viewer.verify"])
def test_help_names_every_variable_and_shows_no_secret(program: str) -> None:
    env = {
        **os.environ,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_USERNAME": "fraud",
        "KAFKA_SASL_PASSWORD": PASSWORD,
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", program, "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    for flag, variable in FLAGS.items():
        assert f"--{flag.replace('_', '-')}" in result.stdout
        assert f"[env: {variable}" in result.stdout
