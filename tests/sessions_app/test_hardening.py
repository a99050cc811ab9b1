"""Issue 17: validation decides, not the database. Every value below is either stored the same
on SQLite, PostgreSQL and MariaDB or refused with the same ValidationError, keyed by field; none
escapes as another exception. The suite runs on each backend (DATABASE_URL), and each test
compares the outcome with a backend-independent expectation, so it passes everywhere only if
the backends agree.
"""

import datetime as dt
import json
import math
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from agents_app.models import LanguageModel
from sessions_app import validation
from sessions_app.models import Message, Session
from sessions_app.services import add_usage, append_messages, end_session

SID = "20260101_000000_hardening"
MiB = 1024 * 1024
INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1


def snapshot() -> dict:
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in (LanguageModel, Session, Message)}


def save(**fields):
    """One message with ``fields`` appended to SID; returns the stored message's fields."""
    append_messages(SID, [{"role": "assistant", "content": "x", **fields}], model="m/x", source="cli")
    return Message.objects.filter(session_id=SID).order_by("-id").first()


def refused(call, key: str) -> ValidationError:
    """``call`` raises a ValidationError with an error under ``key`` (and nothing else escapes)."""
    with pytest.raises(ValidationError) as info:
        call()
    assert key in info.value.message_dict, info.value.message_dict
    return info.value


def nested(depth: int, leaf=1, kind=list):
    value = leaf
    for _ in range(depth):
        value = [value] if kind is list else {"k": value}
    return value


@pytest.fixture
def session(db):
    append_messages(SID, [{"role": "user", "content": "first"}], model="m/x", source="cli")
    return Session.objects.get(pk=SID)


# -- item 1: JSON depth ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["tool_calls", "extra"])
@pytest.mark.parametrize("kind", [list, dict])
def test_json_at_the_depth_limit_is_stored_and_deeper_is_refused(session, field, kind):
    assert validation.MAX_JSON_DEPTH == 20  # the documented limit, below MariaDB's json_valid (32)
    deepest = nested(validation.MAX_JSON_DEPTH, kind=kind)
    assert getattr(save(**{field: deepest}), field) == deepest
    before = snapshot()
    for depth in (validation.MAX_JSON_DEPTH + 1, 32, 33, 100_000):  # 100,000: no RecursionError
        refused(lambda d=depth: save(**{field: nested(d, kind=kind)}), f"messages[0].{field}")
    assert snapshot() == before


def test_a_self_containing_list_is_refused_not_a_recursion_error(session):
    loop = []
    loop.append(loop)
    refused(lambda: save(extra={"loop": loop}), "messages[0].extra")


# -- item 2: size as sent ----------------------------------------------------------------------


def test_quotes_and_backslashes_that_double_when_escaped_are_refused_everywhere(session):
    """The issue's case: 4 Mi ' content plus 4 Mi \\ reasoning is 8 MiB stored but 16 MiB in a
    MariaDB statement (each doubled by escaping), past max_allowed_packet."""
    before = snapshot()
    content, reasoning = "'" * (4 * MiB), "\\" * (4 * MiB)
    refused(lambda: save(content=content, reasoning=reasoning), "messages[0]")
    assert snapshot() == before


def test_escaped_text_up_to_the_limit_is_stored_everywhere(session):
    # Each ' and \ counts twice as sent: 8 MiB + 4 MiB is exactly the 12 MiB limit; one more is over.
    assert validation.MAX_MESSAGE_BYTES == 12 * 1024 * 1024
    content, reasoning = "'" * (4 * MiB), "\\" * (2 * MiB)
    stored = save(content=content, reasoning=reasoning)
    assert (stored.content, stored.reasoning) == (content, reasoning)
    before = snapshot()
    refused(lambda: save(content=content, reasoning=reasoning + "\\"), "messages[0]")
    assert snapshot() == before


def test_json_counts_its_escaping_as_sent(session):
    # json.dumps writes each " as \" and MariaDB's client escapes both: 4 bytes a character.
    before = snapshot()
    refused(lambda: save(extra={"q": '"' * (3 * MiB + 1)}), "messages[0].extra")
    assert snapshot() == before


def test_a_system_prompt_too_big_as_sent_is_refused(db):
    prompt = "\N{GRINNING FACE}" * (4 * MiB)  # within the character limit, 16 MiB of UTF-8
    refused(
        lambda: append_messages(SID, [{"role": "user", "content": "x"}], model="m", source="cli", system_prompt=prompt),
        "system_prompt",
    )
    assert not Session.objects.exists()


# -- item 3: keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["tool_calls", "extra"])
@pytest.mark.parametrize(
    "document",
    [{"a\x00b": 1}, {"\ud800": 1}, [{"ok": {"\x00": 1}}], {"x": [{"y": {"\udfff z": 1}}]}],
    ids=["NUL", "lone-surrogate", "nested-NUL", "nested-surrogate"],
)
def test_bad_keys_are_refused_like_bad_values(session, field, document):
    before = snapshot()
    refused(lambda: save(**{field: document}), f"messages[0].{field}")
    assert snapshot() == before


# -- item 5: other exceptions that escaped ---------------------------------------------------------

EDGE_OFFSETS = [dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5))]


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"role": {}}, "role"),
        ({"role": []}, "role"),
        ({"role": {"user"}}, "role"),
        ({"tool_calls": [10**5000]}, "tool_calls"),
        ({"extra": {"n": 2**64}}, "extra"),
        ({"extra": {"n": -(2**63) - 1}}, "extra"),
        ({"token_count": 10**5000}, "token_count"),
        ({"timestamp": 10**5000}, "timestamp"),
        ({"timestamp": -(10**5000)}, "timestamp"),
        ({"timestamp": dt.datetime.max.replace(tzinfo=EDGE_OFFSETS[0])}, "timestamp"),
        ({"timestamp": dt.datetime.min.replace(tzinfo=EDGE_OFFSETS[1])}, "timestamp"),
        ({"extra": {"m": __import__("types").MappingProxyType({})}}, "extra"),
    ],
    ids=[
        "role-dict",
        "role-list",
        "role-set",
        "huge-int-tool-call",
        "int-past-64-bits",
        "int-below-64-bits",
        "huge-token-count",
        "huge-seconds",
        "huge-negative-seconds",
        "datetime.max-at-UTC-5",
        "datetime.min-at-UTC+5",
        "mapping-proxy",
    ],
)
def test_values_that_raised_other_exceptions_are_validation_errors(session, fields, key):
    before = snapshot()
    message = {"role": "user", "content": "x", **fields}
    refused(lambda: append_messages(SID, [message], model="m/x", source="cli"), f"messages[0].{key}")
    assert snapshot() == before


@pytest.mark.parametrize(
    "when", [dt.datetime.max.replace(tzinfo=EDGE_OFFSETS[0]), 10**5000], ids=["datetime.max-at-UTC-5", "huge-seconds"]
)
def test_session_timestamps_at_the_edges_are_validation_errors(session, when):
    refused(
        lambda: append_messages("other", [{"role": "user"}], model="m", source="cli", started_at=when), "started_at"
    )
    refused(lambda: end_session(SID, ended_at=when), "ended_at")


def test_64_bit_json_integers_are_stored_exactly(session):
    document = {"low": -(2**63), "high": 2**64 - 1, "big": INT64_MAX}
    assert save(extra=document).extra == document


# -- item 6: counters --------------------------------------------------------------------------


def test_a_token_counter_cannot_overflow(session):
    assert add_usage(SID, {"input_tokens": 2**62})
    before = snapshot()
    error = refused(lambda: add_usage(SID, {"input_tokens": 2**62}), "usage.input_tokens")
    assert "limit" in error.message_dict["usage.input_tokens"][0]
    assert snapshot() == before
    assert add_usage(SID, {"input_tokens": 2**62 - 1})  # exactly to the limit
    assert Session.objects.get(pk=SID).input_tokens == INT64_MAX


def test_an_overflowing_flush_writes_nothing(session):
    Session.objects.filter(pk=SID).update(output_tokens=INT64_MAX - 5)
    before = snapshot()
    message = [{"role": "assistant", "content": "not saved"}]
    refused(
        lambda: append_messages(SID, message, model="m/x", source="cli", usage={"output_tokens": 6}),
        "usage.output_tokens",
    )
    assert snapshot() == before
    append_messages(SID, message, model="m/x", source="cli", usage={"output_tokens": 5})
    assert Session.objects.get(pk=SID).output_tokens == INT64_MAX


@pytest.mark.parametrize("counter", ["message_count", "tool_call_count"])
def test_32_bit_counters_are_bounded_alike(session, counter):
    Session.objects.filter(pk=SID).update(**{counter: INT32_MAX})
    before = snapshot()
    refused(lambda: save(tool_calls=[{"id": "t"}]), counter)
    assert snapshot() == before


def test_api_call_count_is_a_32_bit_counter(session):
    Session.objects.filter(pk=SID).update(api_call_count=INT32_MAX - 1)
    refused(lambda: add_usage(SID, {"api_call_count": 2}), "usage.api_call_count")
    assert add_usage(SID, {"api_call_count": 1})
    assert Session.objects.get(pk=SID).api_call_count == INT32_MAX


def test_usage_for_a_missing_session_is_still_false(db):
    assert add_usage("nobody", {"input_tokens": 1}) is False


# -- property tests: one expectation for every backend ----------------------------------------------

# Characters that matter: NUL and lone surrogates (refused), what escaping doubles, multi-byte.
ALPHABET = st.sampled_from(["a", "\x00", "\ud800", "\udfff", "'", '"', "\\", "\n", "\x1a", "é", "\u2028", "🙂"])
texts = st.text(ALPHABET, max_size=6)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    # PostgreSQL's jsonb keeps numbers as decimals and gives 1e16 back as an integer: modest floats.
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
    st.just(math.nan),
    texts,
)
documents = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8
)


@st.composite
def wrapped_documents(draw):
    """A document under 0-25 extra levels of lists or objects, to reach past MAX_JSON_DEPTH."""
    document = draw(documents)
    for kind in draw(st.lists(st.sampled_from(["list", "dict"]), max_size=25)):
        document = [document] if kind == "list" else {draw(texts): document}
    return document


def expected_json_refusal(value, depth: int = 0) -> bool:
    """The documented rule, written independently: refused iff nested deeper than 20, or any
    string or key holds NUL or a lone surrogate, or a number is NaN or past 64 bits."""

    def bad_text(text):
        return "\x00" in text or any(0xD800 <= ord(char) <= 0xDFFF for char in text)

    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int):
        return not -(2**63) <= value <= 2**64 - 1
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return bad_text(value)
    if depth + 1 > 20:
        return True
    if isinstance(value, dict):
        return any(bad_text(k) or expected_json_refusal(v, depth + 1) for k, v in value.items())
    return any(expected_json_refusal(v, depth + 1) for v in value)


def worst_case_sent_bytes(text: str) -> int:
    """UTF-8 bytes, plus one for each character MySQL's client escapes (written from its docs)."""
    return len(text.encode()) + sum(char in "'\"\\\n\r\x1a" for char in text)


PROPERTY = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestBackendsAgree(TestCase):
    # Hypothesis runs each example in its own transaction (rolled back); setUp would run outside.

    @staticmethod
    def start():
        append_messages(SID, [{"role": "user", "content": "first"}], model="m/x", source="cli")

    def outcome(self, message: dict):
        """("stored", the message as read back) or ("refused", the error keys)."""
        self.start()
        try:
            append_messages(SID, [message], model="m/x", source="cli")
        except ValidationError as exc:
            return "refused", set(exc.message_dict)
        return "stored", Message.objects.filter(session_id=SID).order_by("-id").first()

    @PROPERTY
    @given(document=wrapped_documents(), field=st.sampled_from(["tool_calls", "extra"]))
    def test_json_is_stored_the_same_or_refused_the_same(self, document, field):
        if field == "tool_calls" and not isinstance(document, (list, dict)):
            document = [document]
        kind, result = self.outcome({"role": "assistant", field: document})
        if expected_json_refusal(document):
            assert (kind, result) == ("refused", {f"messages[0].{field}"})
        else:
            assert kind == "stored", result
            assert getattr(result, field) == document

    @PROPERTY
    @given(content=st.text(ALPHABET, max_size=300), reasoning=st.text(ALPHABET, max_size=300), extra=documents)
    def test_size_as_sent_decides_alike(self, content, reasoning, extra):
        # A small limit, so that generated messages fall on both sides of it, and so do single fields.
        limit = 500
        message = {"role": "assistant", "content": content, "reasoning": reasoning, "extra": extra}
        with mock.patch.object(validation.text, "MAX_MESSAGE_BYTES", limit):
            kind, result = self.outcome(message)
        if any(expected_json_refusal(text) for text in (content, reasoning)) or expected_json_refusal(extra):
            assert kind == "refused"
            return
        sizes = {"content": worst_case_sent_bytes(content), "reasoning": worst_case_sent_bytes(reasoning)}
        if extra is not None:  # an absent document is no text in the statement
            sizes["extra"] = worst_case_sent_bytes(json.dumps(extra))
        too_big = {f"messages[0].{name}" for name, size in sizes.items() if size > limit}
        if too_big:  # keyed by the (first) field that alone is over the limit
            assert kind == "refused" and len(result) == 1 and result <= too_big, (kind, result, too_big)
        elif sum(sizes.values()) > limit:
            assert (kind, result) == ("refused", {"messages[0]"})
        else:
            assert kind == "stored", result
            assert (result.content or "", result.reasoning or "", result.extra) == (content, reasoning, extra)

    @PROPERTY
    @given(
        when=st.one_of(
            st.datetimes(min_value=dt.datetime(1969, 12, 30), max_value=dt.datetime(2100, 1, 1)),
            st.datetimes(),  # down to year 1 and up to 9999: overflow once moved to UTC
        ),
        minutes=st.one_of(st.none(), st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)),
    )
    def test_datetimes_are_stored_as_the_same_instant_or_refused_alike(self, when, minutes):
        if minutes is not None:
            when = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes)))
        # The instant in microseconds since year 1 (UTC), in integers: no datetime overflow here.
        epoch_us = (dt.datetime(1970, 1, 1) - dt.datetime.min) // dt.timedelta(microseconds=1)
        local_us = (when.replace(tzinfo=None) - dt.datetime.min) // dt.timedelta(microseconds=1)
        utc_us = local_us - (minutes or 0) * 60_000_000
        latest_us = (timezone.now().replace(tzinfo=None) - dt.datetime.min) // dt.timedelta(microseconds=1)
        latest_us += 86_400_000_000  # a day of clock skew
        kind, result = self.outcome({"role": "user", "timestamp": when})
        if minutes is None or not epoch_us <= utc_us <= latest_us:
            assert (kind, result) == ("refused", {"messages[0].timestamp"})
        else:
            assert kind == "stored", result
            assert result.timestamp == when
            assert (result.timestamp - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
                microseconds=1
            ) == utc_us - epoch_us

    @PROPERTY
    @given(first=st.integers(min_value=0, max_value=2**62), second=st.integers(min_value=0, max_value=2**62))
    def test_counters_refuse_overflow_alike(self, first, second):
        self.start()
        add_usage(SID, {"reasoning_tokens": first})
        try:
            add_usage(SID, {"reasoning_tokens": second})
        except ValidationError as exc:
            assert first + second > INT64_MAX
            assert set(exc.message_dict) == {"usage.reasoning_tokens"}
            assert Session.objects.get(pk=SID).reasoning_tokens == first
        else:
            assert first + second <= INT64_MAX
            assert Session.objects.get(pk=SID).reasoning_tokens == first + second
