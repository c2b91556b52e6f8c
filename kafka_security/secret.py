"""The values that must never show (passwords, key passwords, tokens), and the error of a bad
setting; shared by ``config`` and ``oauth``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class SecurityError(Exception):
    """A Kafka security setting is missing, contradicts another or cannot be used."""


@dataclass(frozen=True)
class Secret:
    """A value that never shows in a repr, a log line or an f-string: only :meth:`reveal` has it."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


def read_secret(name: str, path: str, *, strip: bool = False) -> Secret:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SecurityError(f"{name}={path!r} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SecurityError(f"{name}={path!r} is not UTF-8 text") from None
    # `echo secret > file` and most editors end the file with a newline; a password never does,
    # and a token has no white space at all.
    text = text.strip() if strip else text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise SecurityError(f"{name}={path!r} is empty")
    return Secret(text)
