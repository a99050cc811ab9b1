"""Loading the demo: a realistic, deterministic history that shows the drop in empty sessions at a cut-over.

Before the cut-over, sessions are written the way the old eager code wrote them: one row per
constructed agent, inserted at once, so agents that never spoke (timeouts, API errors, sub-tasks
never dispatched) left empty rows, a share that differs per model. After it, every conversation
goes through the real ``Agent`` facade, so an agent that never speaks leaves nothing behind.
The same seed, days and volume always give the same sessions, messages and counts.
"""

import datetime as dt
import random
import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Q
from django.utils import timezone

from agents_app import registry
from agents_app import services as agent_services
from agents_app.agent import Agent
from agents_app.demo.plan import (
    DEFAULT_ADMIN_USERNAME,
    DEFAULT_CUTOVER_DAYS_AGO,
    DEFAULT_DAYS,
    DEFAULT_SEED,
    DEFAULT_SESSIONS_PER_DAY,
    MODELS,
    SUMMARY,
    SYSTEM_PROMPT,
    Planned,
    plan,
)
from agents_app.models import AbandonedAgentTally, LanguageModel, RetiredAbandonedAgents
from sessions_app import services
from sessions_app.aggregates import empty_condition
from sessions_app.models import DeletedSessions, Message, MetricLabel, ModelUsage, Session, TrendMarker
from sessions_app.rollup import rebuild_days, reset_rollup
from sessions_app.validation import tool_call_total

# The demo's cut-over, drawn on the analytics page's trend as an operator would have recorded it.
CUTOVER_LABEL = "lazy session creation on"
CUTOVER_NOTE = "Agents create their session with the first message; an agent that never speaks leaves no row."


@dataclass
class ModelSplit:
    """Sessions and empty sessions of one model before and after the cut-over."""

    model: str | None
    before: int = 0
    before_empty: int = 0
    after: int = 0
    after_empty: int = 0

    @property
    def before_rate(self) -> float:
        return self.before_empty / self.before if self.before else 0.0

    @property
    def after_rate(self) -> float:
        return self.after_empty / self.after if self.after else 0.0


@dataclass
class DemoResult:
    since: dt.datetime
    cutover: dt.datetime
    sessions: int = 0
    messages: int = 0
    silent_agents_after: int = 0  # agents built after the cut-over that never spoke: they left no row
    per_model: list[ModelSplit] = field(default_factory=list)


@dataclass
class DemoLogin:
    username: str
    password: str
    created: bool


def load_demo(
    *,
    seed: int = DEFAULT_SEED,
    days: int = DEFAULT_DAYS,
    cutover_days_ago: int = DEFAULT_CUTOVER_DAYS_AGO,
    sessions_per_day: int = DEFAULT_SESSIONS_PER_DAY,
    flush: bool = False,
    force: bool = False,
    now: dt.datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> DemoResult:
    """Write the demo history in one transaction; refuses a database that already has sessions
    unless ``flush`` (delete all sessions, messages and models first) or ``force`` (add beside them)."""
    _check_int(seed, "seed", 0, 2**63)
    _check_int(days, "days", 1, 3650)
    _check_int(cutover_days_ago, "cutover_days_ago", 0, days)
    _check_int(sessions_per_day, "sessions_per_day", 1, 10_000)
    now = now or timezone.now()
    result = DemoResult(since=now - dt.timedelta(days=days, hours=3), cutover=now - dt.timedelta(days=cutover_days_ago))
    agents = plan(random.Random(seed), now=now, days=days, sessions_per_day=sessions_per_day)
    with transaction.atomic(using=using):
        if flush:
            flush_sessions(using=using)
        elif Session.objects.using(using).exists():
            if not force:
                raise ValidationError("the database already has sessions: flush it first, or force to add beside them.")
            ids = [p.session_id for p in agents] + [p.child_id for p in agents]
            if any(
                Session.objects.using(using).filter(pk__in=ids[i : i + 500]).exists() for i in range(0, len(ids), 500)
            ):
                raise ValidationError(f"the demo for seed {seed} is already loaded; flush first or use another seed.")
        legacy = [p for p in agents if p.started_at < result.cutover]
        _write_legacy(legacy, using=using)
        for planned in agents[len(legacy) :]:
            result.silent_agents_after += _run_agent(planned, using=using) == 0
        TrendMarker.objects.using(using).get_or_create(
            at=result.cutover, label=CUTOVER_LABEL, defaults={"note": CUTOVER_NOTE}
        )
        # Past days the demo added beside existing sessions (--force) may be in a rollup already.
        rebuild_days(((result.since + dt.timedelta(days=n)).date() for n in range(days + 2)), using=using)
    result.per_model = model_split(since=result.since, cutover=result.cutover, using=using)
    result.sessions = sum(row.before + row.after for row in result.per_model)
    in_window = Message.objects.using(using).filter(session__started_at__gte=result.since)
    result.messages = in_window.count()
    return result


def flush_sessions(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Delete every message, session (with its per-model usage), abandoned-agent tally, language
    model and trend marker, and what the read side keeps about them (the rollup, the ledgers, the
    metric labels): the demo starts over, its counters from zero. Users are kept."""
    with transaction.atomic(using=using):
        Message.objects.using(using).all().delete()  # no relations point at messages: one DELETE
        ModelUsage.objects.using(using).all().delete()
        sessions = Session.objects.using(using)
        sessions.filter(parent_session__isnull=False).update(parent_session=None)
        sessions.all()._raw_delete(using)  # now childless and empty: skip the Collector's SELECT of every row
        AbandonedAgentTally.objects.using(using).all().delete()
        RetiredAbandonedAgents.objects.using(using).all().delete()
        DeletedSessions.objects.using(using).all().delete()
        MetricLabel.objects.using(using).all().delete()
        LanguageModel.objects.using(using).all().delete()
        TrendMarker.objects.using(using).all().delete()
        reset_rollup(using=using)  # its days counted the sessions just deleted


def check_admin_username(username) -> str:
    """``username`` as the user model's username field cleans it (its validators, its length);
    ``ValidationError`` keyed ``username`` otherwise."""
    user_model = get_user_model()
    try:
        return user_model._meta.get_field(user_model.USERNAME_FIELD).clean(username, None)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from None


def reset_demo_admin(*, username: str = DEFAULT_ADMIN_USERNAME, using: str = DEFAULT_DB_ALIAS) -> DemoLogin:
    """Create the demo superuser, or give the existing one a new password; the password is random each time."""
    username = check_admin_username(username)
    manager = get_user_model()._default_manager.db_manager(using)
    password = secrets.token_urlsafe(16)
    user = manager.filter(**{manager.model.USERNAME_FIELD: username}).first()
    if user is None:
        manager.create_superuser(username, "", password)
        return DemoLogin(username, password, created=True)
    user.set_password(password)
    user.is_active = user.is_staff = user.is_superuser = True
    user.save(using=using)
    return DemoLogin(username, password, created=False)


def model_split(*, since: dt.datetime, cutover: dt.datetime, using: str = DEFAULT_DB_ALIAS) -> list[ModelSplit]:
    """Sessions and empty sessions per model before and after ``cutover`` (one aggregate query)."""
    empty = empty_condition()
    before, after = Q(started_at__lt=cutover), Q(started_at__gte=cutover)
    rows = (
        Session.objects.using(using)
        .filter(started_at__gte=since)
        .values("model__name")
        .annotate(
            before=Count("pk", filter=before),
            before_empty=Count("pk", filter=before & Q(empty)),
            after=Count("pk", filter=after),
            after_empty=Count("pk", filter=after & Q(empty)),
        )
        .order_by("model__name")
    )
    return [ModelSplit(row.pop("model__name"), **row) for row in rows]


def _check_int(value, name: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError({name: f"must be a whole number from {low} to {high}, got {value!r}."})


def _write_legacy(planned: list[Planned], *, using: str) -> None:
    """Rows as the old eager code left them: a session per constructed agent, speaking or not."""
    models = {name: registry.language_model(name, using=using) for name, _, _ in MODELS}
    sessions, messages = [], []
    for p in planned:
        common = {"model": models[p.model], "source": p.source, "user_id": p.user_id, "system_prompt": SYSTEM_PROMPT}
        if p.silent:
            reason, seconds = p.silent
            ended = p.started_at + dt.timedelta(seconds=seconds)
            if p.crashed:  # the process died: the row was never ended
                ended = reason = None
            sessions.append(
                Session(id=p.session_id, started_at=p.started_at, ended_at=ended, end_reason=reason, **common)
            )
            continue
        chain = [(p.session_id, None, p.started_at, p.turns)]
        if p.compress_before:
            at = _compressed_at(p)
            summary = ([{"role": "user", "content": SUMMARY, "timestamp": at}], {})
            chain = [
                (p.session_id, None, p.started_at, p.turns[: p.compress_before]),
                (p.child_id, p.session_id, at, [summary, *p.turns[p.compress_before :]]),
            ]
        for session_id, parent_id, started, turns in chain:
            rows = [m for turn_messages, _ in turns for m in turn_messages]
            if session_id != chain[-1][0]:
                ended, reason = chain[-1][2], "compression"
            elif p.crashed:
                ended, reason = None, None
            else:
                ended, reason = _ended_at(p), p.end_reason
            session = Session(
                id=session_id,
                parent_session_id=parent_id,
                started_at=started,
                ended_at=ended,
                end_reason=reason,
                message_count=len(rows) * (2 if p.stale_counter else 1),  # hermes-agent #12563 doubled it
                tool_call_count=sum(tool_call_total(m.get("tool_calls")) for m in rows),
                **common,
            )
            for _, usage in turns:
                for name, value in usage.items():
                    setattr(session, name, getattr(session, name) + value)
            sessions.append(session)
            messages += [Message(session_id=session_id, model=models[p.model], **m) for m in rows]
    Session.objects.using(using).bulk_create(sessions, batch_size=500)  # parents come before their children
    Message.objects.using(using).bulk_create(messages, batch_size=1000)


def _run_agent(p: Planned, *, using: str) -> int:
    """One conversation through the real ``Agent`` facade; returns how many messages it saved."""
    agent = Agent(
        p.model, p.source, user_id=p.user_id, session_id=p.session_id, system_prompt=SYSTEM_PROMPT, using=using
    )
    agent.started_at = p.started_at
    if p.silent:
        # Never spoke: no session row, which is the whole fix. Agent.end() would only count it in
        # the abandoned-agent tally, under today's date; count it under the day it ended instead.
        reason, seconds = p.silent
        if agent_services.abandoned_tracking_enabled():
            day = (p.started_at + dt.timedelta(seconds=seconds)).astimezone(dt.UTC).date()
            agent_services.record_abandoned_agent(p.model, p.source, reason, day=day, using=using)
        return 0
    saved = 0
    for number, (messages, usage) in enumerate(p.turns):
        if number == p.compress_before:
            parent_id, agent = agent.session_id, agent.compress(SUMMARY)
            _backdate_compression(parent_id, agent.session_id, at=_compressed_at(p), using=using)
            saved += 1
        for message in messages:
            agent.add_message(**message)
        agent.add_usage(**usage)
        saved += agent.flush()
    if not p.crashed:
        # Agent.end() stamps the current time; a demo of the past needs the time it ended then.
        services.end_session(agent.session_id, p.end_reason, ended_at=_ended_at(p), using=using)
    return saved


def _compressed_at(p: Planned) -> dt.datetime:
    return p.turns[p.compress_before][0][0]["timestamp"] - dt.timedelta(seconds=2)


def _ended_at(p: Planned) -> dt.datetime:
    return p.turns[-1][0][-1]["timestamp"] + dt.timedelta(seconds=5)


def _backdate_compression(parent_id: str, child_id: str, *, at: dt.datetime, using: str) -> None:
    """``Agent.compress`` stamps the current time on the split; move it back to when it happened."""
    Session.objects.using(using).filter(pk=parent_id).update(ended_at=at)
    Session.objects.using(using).filter(pk=child_id).update(started_at=at)
    Message.objects.using(using).filter(session_id=child_id).update(timestamp=at)
