"""Demo data: a realistic, deterministic history that shows the drop in empty sessions at a cut-over.

``plan`` decides every agent of the demo from a seed; ``load`` writes the eager legacy rows before
the cut-over and runs the real ``Agent`` facade after it.
"""

from agents_app.demo.load import (
    DemoLogin,
    DemoResult,
    ModelSplit,
    check_admin_username,
    flush_sessions,
    load_demo,
    model_split,
    reset_demo_admin,
)
from agents_app.demo.plan import (
    DEFAULT_ADMIN_USERNAME,
    DEFAULT_CUTOVER_DAYS_AGO,
    DEFAULT_DAYS,
    DEFAULT_SEED,
    DEFAULT_SESSIONS_PER_DAY,
    MODELS,
    SOURCES,
)

__all__ = [
    "DEFAULT_ADMIN_USERNAME",
    "DEFAULT_CUTOVER_DAYS_AGO",
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DEFAULT_SESSIONS_PER_DAY",
    "MODELS",
    "SOURCES",
    "DemoLogin",
    "DemoResult",
    "ModelSplit",
    "check_admin_username",
    "flush_sessions",
    "load_demo",
    "model_split",
    "reset_demo_admin",
]
