"""Make text taken from alert records safe to print on a terminal.

Records come from the network: a crafted account id could carry escape sequences that rewrite
the screen, so every string from a record passes through :func:`printable` before it is shown.
"""

from __future__ import annotations

import re

# Python's own notion of "printable" (what repr() leaves alone) covers the C0/C1 controls, DEL,
# the invisible format characters (bidi overrides, zero-width ones), line/paragraph separators,
# surrogates and unassigned code points: everything a terminal could act on or hide.
_ESCAPE_LIMIT = 200


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str, limit: int = _ESCAPE_LIMIT) -> str:
    """``text`` with unprintable characters escaped and cut to ``limit`` characters.

    Escapes read like Python's: ``\\n``, ``\\x1b``, ``\\u202e``.

    Cutting happens before escaping so a huge field costs at most ``limit`` characters of work;
    the cut is marked so a reader knows the value was longer.
    """
    cut = len(text) > limit
    head = text[:limit] if cut else text
    if not head.isprintable():
        head = "".join(char if char.isprintable() else _escape_char(char) for char in head)
    return f"{head}…(+{len(text) - limit} chars)" if cut else head


_JSON_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    # JSON has only \uXXXX escapes: characters outside the BMP become a surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable_json(document: str) -> str:
    """Escape what a JSON encoder may leave raw (DEL, C1 controls, bidi overrides...).

    JSON requires escaping only U+0000..U+001F, so a valid encoder may emit U+009B (a terminal's
    CSI) raw. Such characters can only sit inside JSON strings, where ``\\uXXXX`` means the same
    character: the document decodes to the same value and is safe to print.
    """
    if document.isascii() and document.isprintable():
        return document
    return _JSON_UNSAFE.sub(_json_escape, document)
