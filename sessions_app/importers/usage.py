"""Per-model usage (schema 30's ``session_model_usage``): one ``ModelUsage`` row per source row of the
sessions a page imported or refreshed. hermes updates these rows in place while a session runs, so
a page inserts the rows we lack, updates the ones that changed and deletes the ones hermes no longer
has; a bad row is skipped, counted and named (its session and model), the others still import."""

from decimal import Decimal

from django.db.models import F

from sessions_app import validation
from sessions_app.importers.report import ImportResult
from sessions_app.importers.rows import RowConverter, RowError, checked
from sessions_app.importers.source import Source
from sessions_app.importers.writer import USAGE_FIELDS, Writer
from sessions_app.models import ModelUsage
from sessions_app.validation import shown

_KEY = ("billing_provider", "billing_base_url", "billing_mode", "task")
_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
_FIGURES = tuple(name for name in USAGE_FIELDS if name not in {"session_id", "model_id", *_KEY})


class UsageSync:
    """Brings the ``ModelUsage`` rows of a page's sessions in line with the file's."""

    def __init__(self, source: Source, rows: RowConverter, writer: Writer, *, model_id, dry_run: bool):
        self.source, self.rows, self.writer, self.dry_run = source, rows, writer, dry_run
        self.model_id = model_id  # SessionPages._model_id: (page, name) -> id, creating the model

    def read(self, session_ids: list[str]) -> dict[str, list[tuple]]:
        """The file's usage rows of ``session_ids``, by session (empty without the table)."""
        rows: dict[str, list[tuple]] = {}
        for row in self.source.usage(session_ids):
            rows.setdefault(row[0], []).append(row)
        return rows

    def write(self, page: ImportResult, session_ids: list[str], new_ids: set[str], rows: dict) -> None:
        """Sync the usage rows of ``session_ids`` (kept by this page; ``new_ids`` were just created)
        with the file's (``rows``: ``read``)."""
        if not self.source.has_usage or not session_ids:
            return
        wanted: dict[tuple, tuple[str | None, dict]] = {}
        for row in (row for sid in session_ids for row in rows.get(sid, ())):
            sid, name = row[0], row[1]
            try:
                model, fields = usage_fields(self.rows, row)
            except RowError as exc:
                page.usage_skipped += 1
                page.skip(f"usage: {exc.reason}", f"session {shown(sid)} model {shown(name)}")
                where = f"usage row of session {shown(sid)}, model {shown(name)}"
                page.warn(f"{where}: {exc.reason} ({exc.detail}); skipped")
                continue
            key = (sid, model, *(fields[name] for name in _KEY))
            if key in wanted:  # '' and NULL models, or keys a crafted file repeats
                page.usage_skipped += 1
                page.skip("usage: duplicate key", f"session {shown(sid)} model {shown(name)}")
                continue
            wanted[key] = (model, fields)
        old = [sid for sid in session_ids if sid not in new_ids]
        stored = {}
        if old:
            query = ModelUsage.objects.using(self.using).annotate(model_name=F("model__name"))
            for start in range(0, len(old), 900):
                for usage in query.filter(session_id__in=old[start : start + 900]):
                    stored[(usage.session_id, usage.model_name or None, *(getattr(usage, n) for n in _KEY))] = usage
        inserts, updates = [], []
        for key, (model, fields) in wanted.items():
            usage = stored.pop(key, None)
            if usage is None:
                inserts.append({"session_id": key[0], "model_id": self.model_id(page, model), **fields})
                continue
            different = tuple(name for name in _FIGURES if getattr(usage, name) != fields[name])
            if different:
                for name in different:
                    setattr(usage, name, fields[name])
                updates.append((usage, different))
        page.usage_imported += len(inserts)
        page.usage_updated += len(updates)
        page.usage_removed += len(stored)
        if self.dry_run:
            return
        self.writer.create_usage(inserts)
        self.writer.update_usage(updates)
        self.writer.delete_usage([usage.pk for usage in stored.values()])

    @property
    def using(self) -> str:
        return self.writer.using


def usage_fields(convert: RowConverter, row) -> tuple[str | None, dict]:
    """A ``session_model_usage`` row (``source.USAGE_COLUMNS``) as ``(model name, ModelUsage field
    values)``, checked with the converter's rules for the session's own figures."""
    (_, model, provider, base_url, mode, task, api_calls, *tokens), rest = row[:12], row[12:]
    estimated, actual, cost_status, cost_source, first_seen, last_seen = rest
    if model is not None and not isinstance(model, str):
        raise RowError("invalid model", repr(model))
    model = model or None
    if model is not None:
        model = checked(validation.check_identifier, model, "model", max_length=255, column="model")
    fields = {
        "billing_provider": _key(convert, provider, "billing_provider", 100),
        "billing_base_url": _key(convert, base_url, "billing_base_url", 400),
        "billing_mode": _key(convert, mode, "billing_mode", 64),
        "task": _key(convert, task, "task", 64),
        "api_calls": convert.count(api_calls, "api_call_count"),
        "estimated_cost_usd": convert.cost(estimated, "estimated_cost_usd") or Decimal(0),
        "actual_cost_usd": convert.cost(actual, "actual_cost_usd") or Decimal(0),
        "cost_status": convert.text(cost_status, "cost_status", 64),
        "cost_source": convert.text(cost_source, "cost_source", 64),
        "first_seen": convert.time(first_seen, "first_seen"),
        "last_seen": convert.time(last_seen, "last_seen"),
    }
    for name, value in zip(_TOKENS, tokens, strict=True):
        fields[name] = convert.token_total(value, name)
    return model, fields


def _key(convert: RowConverter, value, column: str, limit: int) -> str:
    """A text column of hermes' usage key: NULL is '' (hermes' default), checked as an identifier."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise RowError(f"invalid {column}", repr(value))
    value = convert.text(value, column, limit)
    return checked(validation.check_identifier, value, column, max_length=limit, column=column)
