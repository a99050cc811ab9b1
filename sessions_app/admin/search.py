"""A bound on admin search terms, shared by every changelist with ``search_fields``."""

from django.contrib import messages

# Longest admin search term: room for a session id (128) or a model name (255). A longer one
# is refused with a message: SQLite fails on a LIKE pattern past 50,000 bytes ("LIKE or GLOB
# pattern too complex") and each word of the term adds a condition to the query.
MAX_SEARCH_CHARS = 256


class BoundedSearchMixin:
    """Refuse a search term longer than ``MAX_SEARCH_CHARS`` (an empty list and a warning)
    rather than send the database a pattern it may fail on."""

    def get_search_results(self, request, queryset, search_term):
        if len(search_term) > MAX_SEARCH_CHARS:
            self.message_user(
                request,
                f"The search term is {len(search_term):,} characters long; the limit is {MAX_SEARCH_CHARS}.",
                messages.WARNING,
            )
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)
