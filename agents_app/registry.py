"""The language-model registry: model name -> ``LanguageModel`` row, created on first sight.

The save path asks for a model's id on every flush, inside the flush's transaction, and reads it
from the database each time: one SELECT on the unique name index. A process-local cache of ids
was faster but wrong across processes: after another process renamed a model (the admin) or
deleted and re-created it, a long-lived agent process kept filing sessions of the old name under
the renamed row, or under an id that no longer existed. Read in the transaction that then uses
the id, the name is always the row's current one; a model deleted by another process between that
read and the commit makes the write fail on its key, and ``run_with_model_ids`` retries it once.
"""

from collections import Counter
from collections.abc import Mapping
from functools import cache

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections

from agents_app.db import run_with_retry
from agents_app.models import LanguageModel, provider_for


def language_model(name: str, *, using: str = DEFAULT_DB_ALIAS) -> LanguageModel:
    """The registry row for a model name, created the first time it is seen."""
    model, _ = LanguageModel.objects.using(using).get_or_create(name=name, defaults={"provider": provider_for(name)})
    return model


@cache
def _id_by_name(alias: str) -> str:
    """``SELECT id FROM <language models> WHERE name = %s``, built once from the model's metadata.
    A hand-written statement because it runs on every flush: the ORM's compilation of the same
    query costs several times the database's work (bench/bench_append.py)."""
    quote = connections[alias].ops.quote_name
    meta = LanguageModel._meta
    key, name = quote(meta.pk.column), quote(meta.get_field("name").column)
    return f"SELECT {key} FROM {quote(meta.db_table)} WHERE {name} = %s"  # noqa: S608 (quoted names only)


def language_model_id(name: str, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """The id of the row named ``name`` now (created the first time the name is seen), read in the
    caller's transaction: a rename or delete committed by another process is followed at once."""
    with connections[using].cursor() as cursor:
        cursor.execute(_id_by_name(using), [name])
        row = cursor.fetchone()
    return row[0] if row is not None else language_model(name, using=using).pk


def run_with_model_ids(write, *, using: str = DEFAULT_DB_ALIAS):
    """``run_with_retry``, and once more when the write fails on a key outside a transaction of the
    caller's: the model row it read may have been deleted by another process before the commit;
    the second run reads the name again (and creates the row). A write that fails on a key for
    another reason fails the same way twice."""
    try:
        return run_with_retry(write, using=using)
    except IntegrityError:
        if connections[using].in_atomic_block:
            raise
        return run_with_retry(write, using=using)


def counts_by_model_name(counts: Mapping, *, using: str = DEFAULT_DB_ALIAS) -> dict[str | None, int]:
    """``{model name: n}`` from ``{model id: n}`` (one query for the names); no model and a model
    named "" are both None, one entry, as the reports key them under "(none)"."""
    names = dict(
        LanguageModel.objects.using(using).filter(pk__in=[pk for pk in counts if pk]).values_list("pk", "name")
    )
    merged = Counter()
    for model_id, n in counts.items():
        merged[names.get(model_id) or None] += n
    return dict(merged)
