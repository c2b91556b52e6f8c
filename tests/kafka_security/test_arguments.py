"""The security flags of the generator, the viewer and fraud-verify: same names, same variables,
flags over variables, no password flag, and no secret in ``--help``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_security import KafkaSecurity
from kafka_security.arguments import FLAGS, add_security_arguments, security_from_args

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "never-in-help-9f3a"


def security(argv: list[str], env: dict[str, str]) -> KafkaSecurity:
    parser = argparse.ArgumentParser(prog="prog")
    add_security_arguments(parser)
    return security_from_args(parser, parser.parse_args(argv), env)


def test_a_flag_wins_over_its_variable_and_the_password_comes_from_the_environment() -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_SASL_USERNAME": "someone",
        "KAFKA_SASL_PASSWORD": PASSWORD,
    }
    chosen = security(["--security-protocol", "SASL_SSL", "--sasl-username", "fraud"], env)
    assert (chosen.protocol, chosen.username) == ("SASL_SSL", "fraud")
    assert chosen.password is not None and chosen.password.reveal() == PASSWORD


def test_a_bad_flag_or_variable_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, env in (
        (["--security-protocol", "SASL_PLAINTEXT"], {}),
        ([], {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}),
    ):
        with pytest.raises(SystemExit) as caught:
            security(argv, env)
        assert caught.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            "prog: error: KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT is not supported: it sends "
            "every record unencrypted; use SASL_SSL"
        )


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
