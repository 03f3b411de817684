"""README.rst's option list agrees with the code: every option, no other, the same defaults.

The "Options" section is a definition list whose terms read ``name`` (default ``value``),
several names sharing one default (``a``, ``b`` (default ``None``)) and an optional note after
the value (``max_pending_bytes`` (default ``16777216``, 16 MiB)). Defaults are compared with
``HandlerOptions()``: enums by member name, everything else as a Python literal of the same kind
(an int default must be written as an int; a float default as a float or an int; lists stand
for tuples), and a byte size in the note must equal the value.
"""

from __future__ import annotations

import ast
import enum
import itertools
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from ecs_metrics_handler._config import OPTION_NAMES, HandlerOptions

README = Path(__file__).resolve().parents[2] / "README.rst"

_TERM = re.compile(r"``(?P<name>\w+)``(?: \(default ``(?P<default>[^`]+)``(?P<note>[^)]*)\))?")
_SIZE = re.compile(r"(?P<count>\d+) (?P<unit>KiB|MiB|GiB)\b")
_UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def _options_section(text: str) -> list[str]:
    """The lines of the top-level section titled "Options", without its title."""
    lines = text.splitlines()
    for index in range(len(lines) - 1):
        if lines[index] == "Options" and re.fullmatch(r"=+", lines[index + 1]):
            start = index + 2
            break
    else:
        raise AssertionError("README.rst has no top-level 'Options' section")
    for end in range(start, len(lines) - 1):
        if lines[end] and re.fullmatch(r"=+", lines[end + 1]):
            return lines[start:end]
    return lines[start:]


def _terms(section: list[str]) -> list[str]:
    """Definition-list terms: unindented lines starting with a literal, then an indented line."""
    return [
        line
        for line, following in itertools.pairwise(section)
        if line.startswith("``") and following.startswith("    ")
    ]


def _parse_term(term: str) -> list[tuple[str, str, str]]:
    """``(name, default, note)`` for each option a term names; asserts the term's shape."""
    entries: list[tuple[str, str, str]] = []
    waiting: list[str] = []
    position = 0
    for match in _TERM.finditer(term):
        separator = term[position : match.start()]
        assert separator in ("", ", "), f"unexpected text {separator!r} in term {term!r}"
        waiting.append(match["name"])
        if match["default"] is not None:
            entries.extend((name, match["default"], match["note"]) for name in waiting)
            waiting = []
        position = match.end()
    assert position == len(term), f"unexpected text {term[position:]!r} in term {term!r}"
    assert not waiting, f"no default stated for {waiting} in term {term!r}"
    return entries


def _documented() -> list[tuple[str, str, str]]:
    section = _options_section(README.read_text(encoding="utf-8"))
    return [entry for term in _terms(section) for entry in _parse_term(term)]


def _same_default(code: object, written: str) -> bool:
    """Whether ``written`` (the README's text) states the default ``code``."""
    if isinstance(code, enum.Enum):
        return written == code.name
    try:
        stated = ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return False
    if code is None or isinstance(code, bool):
        return stated is code
    if isinstance(code, float):
        return type(stated) in (int, float) and stated == code
    if isinstance(code, (int, str)):
        return type(stated) is type(code) and stated == code
    if isinstance(code, tuple):
        return isinstance(stated, (list, tuple)) and tuple(stated) == code
    if isinstance(code, Mapping):
        return isinstance(stated, dict) and stated == dict(code)
    raise AssertionError(f"no README representation known for {code!r}")


def _size_in_note(note: str) -> int | None:
    match = _SIZE.search(note)
    return None if match is None else int(match["count"]) * _UNITS[match["unit"]]


DOCUMENTED = _documented()
DOCUMENTED_NAMES = [name for name, _, _ in DOCUMENTED]
DEFAULTS = HandlerOptions()


def test_every_option_is_documented() -> None:
    """Each HandlerOptions field has an entry in README.rst's Options section."""
    assert sorted(OPTION_NAMES - set(DOCUMENTED_NAMES)) == []


def test_every_documented_option_exists() -> None:
    """README.rst documents no option the handler would refuse, and none twice."""
    assert sorted(set(DOCUMENTED_NAMES) - OPTION_NAMES) == []
    assert len(DOCUMENTED_NAMES) == len(set(DOCUMENTED_NAMES))


@pytest.mark.parametrize(("name", "written", "note"), DOCUMENTED, ids=DOCUMENTED_NAMES)
def test_the_documented_default_is_the_code_default(name: str, written: str, note: str) -> None:
    """The default README.rst states is HandlerOptions' default, and so is a size in the note."""
    code = getattr(DEFAULTS, name)
    assert _same_default(code, written), f"README says {written}, the code {code!r}"
    size = _size_in_note(note)
    assert size is None or size == code, f"README's note {note!r} is not {code!r} bytes"


@pytest.mark.parametrize(
    ("code", "written", "same"),
    [
        (1000, "1000", True),
        (1000, "1000.0", False),
        (1.0, "1", True),
        (1.0, "1.5", False),
        (False, "False", True),
        (False, "0", False),
        (None, "None", True),
        (None, "False", False),
        ("es", '"es"', True),
        ("es", "es", False),
        (("http://localhost:9200",), '["http://localhost:9200"]', True),
        (HandlerOptions().auth_type, "NO_AUTH", True),
        (HandlerOptions().auth_type, "no_auth", False),
        ({}, "{}", True),
    ],
)
def test_the_comparison_is_strict_about_kinds(code: object, written: str, same: bool) -> None:
    """An int is not a float's text, 0 is not False, a bare word is not a string."""
    assert _same_default(code, written) is same


def test_the_term_parser_shares_a_default_and_skips_notes() -> None:
    """Several names before one default share it; a literal inside the note is no option."""
    term = "``a``, ``b`` (default ``None``), ``c`` (default ``5``, at least ``a``)"
    assert _parse_term(term) == [
        ("a", "None", ""),
        ("b", "None", ""),
        ("c", "5", ", at least ``a``"),
    ]
    assert _size_in_note(", 16 MiB") == 16 << 20
