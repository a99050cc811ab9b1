"""docs/reuse.md's table of the apps' own settings says what ``agents_app.conf.SETTINGS`` has: every
setting, none more, and each default as a project would write it."""

import ast
import re
from pathlib import Path

from agents_app.conf import SETTINGS

DOC = Path(__file__).resolve().parents[1] / "docs" / "reuse.md"
ROW = re.compile(r"^\| `(HERMES_[A-Z_]+)` \| `([^`]*)` \|", flags=re.MULTILINE)


def test_the_settings_table_lists_every_setting_with_its_default():
    rows = ROW.findall(DOC.read_text())
    assert [name for name, _ in rows] == list(SETTINGS)  # each once, in the module's order
    for name, default in rows:
        written = ast.literal_eval(default)
        # As written in a settings module, the value must be accepted and mean the default.
        assert SETTINGS[name].check(written) == SETTINGS[name].default, name
