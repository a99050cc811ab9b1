"""import_hermes and hermes profiles (issue 16): one state.db per profile, the profile from the path,
the same session id in two profiles a conflict (never a merge), several files in one command."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sessions_app.importers import import_hermes_db, profile_from_path
from sessions_app.models import Message, Session
from tests.hermes_fixtures import StateDB

JAN1 = 1767225600.0


def run(*args, **options):
    out, err = StringIO(), StringIO()
    call_command("import_hermes", *map(str, args), stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("path", "profile"),
    [
        ("/home/a/.hermes/state.db", "default"),
        ("/home/a/.hermes/profiles/work/state.db", "work"),
        ("/backups/profiles/play/state.db", "play"),
        ("/srv/hermes/state.db", "default"),
    ],
)
def test_profile_from_path(path, profile):
    assert profile_from_path(path) == profile


def _hermes_home(tmp_path):
    """~/.hermes with three profiles; ``shared`` is in all three, ``wp`` in work and play.

    Returns ``{profile: path}`` and ``{profile: {session id: [message contents]}}``."""
    home = tmp_path / ".hermes"
    paths = {
        "default": home / "state.db",
        "work": home / "profiles" / "work" / "state.db",
        "play": home / "profiles" / "play" / "state.db",
    }
    plan = {
        "default": {"shared": ["d1", "d2"], "d-only": ["d3"]},
        "work": {"shared": ["w1"], "wp": ["w2", "w3"], "w-only": []},
        "play": {"shared": ["p1", "p2", "p3"], "wp": ["p4"], "p-only": ["p5"]},
    }
    for profile, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with StateDB(path) as src:
            for sid, contents in plan[profile].items():
                src.session(sid, title=f"{sid} of {profile}")
                for i, content in enumerate(contents):
                    src.message(sid, "user", content, timestamp=JAN1 + i)
    return paths, plan


def test_three_profiles_with_overlapping_ids(db, tmp_path):
    paths, plan = _hermes_home(tmp_path)

    out, _ = run(paths["default"], paths["work"], paths["play"], format="json")
    data = json.loads(out)

    # The first profile imported keeps an id; the others' copies are skipped with their messages.
    owner = {"shared": "default", "d-only": "default", "wp": "work", "w-only": "work", "p-only": "play"}
    assert dict(Session.objects.values_list("pk", "profile")) == owner
    for sid, profile in owner.items():
        assert Session.objects.get(pk=sid).title == f"{sid} of {profile}"
        contents = sorted(Message.objects.filter(session_id=sid).values_list("content", flat=True))
        assert contents == sorted(plan[profile][sid])  # never a mix of two conversations
    per = data["profiles"]
    assert {name: (r["sessions_imported"], r["messages_imported"]) for name, r in per.items()} == {
        "default": (2, 3),
        "work": (2, 2),  # wp, w-only; shared (1 message) skipped
        "play": (1, 1),  # p-only; shared (3 messages) and wp (1) skipped
    }
    assert {name: (r["sessions_skipped"], r["messages_skipped"]) for name, r in per.items()} == {
        "default": (0, 0),
        "work": (1, 1),
        "play": (2, 4),
    }
    assert per["play"]["conflicts"] == [
        {"session": "shared", "stored_profile": "default", "profile": "play"},
        {"session": "wp", "stored_profile": "work", "profile": "play"},
    ]
    assert (data["sessions_imported"], data["messages_imported"], data["failed"]) == (5, 6, [])

    # Re-imported: idempotent, the conflicts reported again, nothing moved.
    before = sorted(Message.objects.values_list("id", "session_id", "content"))
    out, _ = run(paths["play"], paths["work"], paths["default"], format="json")
    again = json.loads(out)
    assert (again["sessions_imported"], again["messages_imported"]) == (0, 0)
    assert again["profiles"]["default"]["sessions_unchanged"] == 2
    assert sorted(Message.objects.values_list("id", "session_id", "content")) == before
    assert dict(Session.objects.values_list("pk", "profile")) == owner


def test_text_summary_names_each_profile_and_conflict(db, tmp_path):
    paths, _ = _hermes_home(tmp_path)
    out, _ = run(paths["default"], paths["work"])
    assert "Profile default: " in out and "Profile work: " in out and "Profile (all): " in out
    assert "conflict: session shared is stored from profile 'default'; the one of profile 'work' was skipped" in out


def test_profile_option_overrides_the_path_for_one_file(db, tmp_path):
    paths, _ = _hermes_home(tmp_path)
    import_hermes_db(paths["work"], profile="archive")
    assert set(Session.objects.values_list("profile", flat=True)) == {"archive"}
    with pytest.raises(CommandError, match="--profile applies to one PATH only"):
        run(paths["default"], paths["work"], "--profile", "x")
    with pytest.raises(CommandError, match="Profile"):
        run(paths["default"], "--profile", "bad\nname")


def test_a_bad_file_stops_only_itself(db, tmp_path):
    paths, _ = _hermes_home(tmp_path)
    broken = tmp_path / "profiles" / "broken" / "state.db"
    broken.parent.mkdir(parents=True)
    broken.write_text("not sqlite")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match=r"1 of 3 files failed.*broken/state\.db.*not a SQLite database"):
        call_command("import_hermes", str(paths["default"]), str(broken), str(paths["work"]), stdout=out, stderr=err)
    assert "not a SQLite database" in err.getvalue()
    assert set(Session.objects.values_list("profile", flat=True)) == {"default", "work"}
    assert "Profile work: " in out.getvalue()


def test_parent_links_stay_within_a_profile(db, tmp_path):
    a, b = tmp_path / "profiles" / "a" / "state.db", tmp_path / "profiles" / "b" / "state.db"
    for path in (a, b):
        path.parent.mkdir(parents=True)
    with StateDB(a) as src:
        src.session("p")
    with StateDB(b) as src:
        src.session("child", parent_session_id="p")  # b's own "p" is not in its file
    import_hermes_db(a)
    result = import_hermes_db(b)
    assert Session.objects.get(pk="child").parent_session_id is None
    assert result.parents_missing == 1
