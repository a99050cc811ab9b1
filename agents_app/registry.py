"""The language-model registry: model name -> ``LanguageModel`` row, created on first sight.

The save path asks for a model's id on every flush, so ids are cached per database alias. An id
enters the cache only after the transaction that read or created the row has committed (a
rolled-back creation is never cached), and the cache is emptied whenever model rows may have
gone: a ``LanguageModel`` deleted in this process, a migration, or a write that failed on a key
(``run_with_model_ids``), since another process may have deleted the row.
"""

from collections import Counter
from collections.abc import Mapping

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction

from agents_app.db import run_with_retry
from agents_app.models import LanguageModel, provider_for

_model_ids: dict[tuple[str, str], int] = {}


def language_model(name: str, *, using: str = DEFAULT_DB_ALIAS) -> LanguageModel:
    """The registry row for a model name, created the first time it is seen."""
    model, _ = LanguageModel.objects.using(using).get_or_create(name=name, defaults={"provider": provider_for(name)})
    return model


def language_model_id(name: str, *, using: str = DEFAULT_DB_ALIAS) -> int:
    """The id of ``name``'s registry row: cached after the first committed lookup."""
    key = (using, name)
    if (model_id := _model_ids.get(key)) is None:
        model_id = language_model(name, using=using).pk
        transaction.on_commit(lambda: _model_ids.__setitem__(key, model_id), using=using)
    return model_id


def forget_language_models(**signal_kwargs) -> None:
    """Empty the id cache (also a signal receiver: ``post_delete`` of a model row, ``post_migrate``)."""
    _model_ids.clear()


def run_with_model_ids(write, *, using: str = DEFAULT_DB_ALIAS):
    """``run_with_retry``, and once more after forgetting the cached model ids when the write
    fails on a key: a cached id may point to a model row another process deleted."""
    try:
        return run_with_retry(write, using=using)
    except IntegrityError:
        if not _model_ids or connections[using].in_atomic_block:
            raise
        forget_language_models()
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
