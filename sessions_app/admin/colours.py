"""A fixed colour per model, derived from its name, so a model looks the same on every page.

The colour is a stable hash of the name (SHA-1, the same in every process and release) into a
palette of mid-lightness hues that read on the admin's light and dark backgrounds
(``static/sessions_app/empty_rates.css``: ``.model-c0`` ... ``.model-c9``). Rank-based colours
changed whenever a filter reordered the models; two names may share a colour, which the legend
and the tooltips tell apart.
"""

import hashlib

PALETTE_SIZE = 10
OTHER_CLASS = "model-other"


def model_colour_class(name: str) -> str:
    """The CSS class of ``name``'s colour (``model-c0`` .. ``model-c9``)."""
    digest = hashlib.sha1(name.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"model-c{int(digest, 16) % PALETTE_SIZE}"
