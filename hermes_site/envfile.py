"""The ``.env`` file of a checkout: settings a developer would otherwise export in every new shell.

The usual dotenv format, read by a few lines here rather than by another dependency: one
``KEY=VALUE`` per line, optionally after ``export``; blank lines and ``#`` comment lines; a value in
single quotes is taken as written, one in double quotes understands ``\\"``, ``\\\\``, ``\\n`` and
``\\t``; an unquoted value ends before `` #`` (a comment) and loses its surrounding blanks. No
``${VAR}`` expansion and no value over several lines. A line that is none of these stops start-up
with one line naming the file and the line number.
"""

import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*")
_DOUBLE_QUOTED = re.compile(r'"(?P<text>(?:[^"\\]|\\.)*)"\s*(?:#.*)?')
_SINGLE_QUOTED = re.compile(r"'(?P<text>[^']*)'\s*(?:#.*)?")
_ESCAPE = re.compile(r"\\(.)")
_ESCAPED = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_COMMENT = re.compile(r"\s+#")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables ``path`` assigns, in file order (a later line wins); ``ImproperlyConfigured``
    for a line that is not an assignment, a comment or blank, or a file that cannot be read."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"cannot read the environment file {path}: {exc}") from None
    variables = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assignment = _ASSIGNMENT.fullmatch(line)
        value = _value(assignment["value"]) if assignment else None
        if value is None:
            raise ImproperlyConfigured(f"{path}, line {number}: expected KEY=VALUE, got {line.strip()!r}.")
        variables[assignment["key"]] = value
    return variables


def _value(text: str) -> str | None:
    """The value as written after ``=``, unquoted; None when its quotes do not close."""
    if text.startswith('"'):
        quoted = _DOUBLE_QUOTED.fullmatch(text)
        return _ESCAPE.sub(lambda m: _ESCAPED.get(m[1], m[0]), quoted["text"]) if quoted else None
    if text.startswith("'"):
        quoted = _SINGLE_QUOTED.fullmatch(text)
        return quoted["text"] if quoted else None
    return _COMMENT.split(text, maxsplit=1)[0]
