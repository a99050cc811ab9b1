"""``import_hermes --follow``: the loop's signals and lines (the loop itself is ``importers.follow``).

One line per cycle that changed something, on stdout (a JSON object per line with ``--format
json``), nothing for a quiet cycle; a file that fails is reported on stderr when it fails and when
its error changes, and again when it reads. SIGTERM and SIGINT set the stop event: the import under
way ends after its page, and the command returns (exit status 0).
"""

import datetime as dt
import json
import signal
import threading

from sessions_app.importers.follow import Cycle, follow_files

_FIGURES = (
    ("sessions_imported", "+{:,} sessions"),
    ("sessions_updated", "{:,} sessions updated"),
    ("messages_imported", "+{:,} messages"),
    ("messages_flags_changed", "{:,} messages undone/compacted"),
    ("messages_removed", "{:,} messages deleted"),
    ("usage_imported", "+{:,} usage rows"),
    ("usage_updated", "{:,} usage rows updated"),
    ("messages_skipped", "{:,} messages skipped"),
    ("sessions_skipped", "{:,} sessions skipped"),
)


class FollowOutput:
    """Runs ``follow_files`` for a command and writes what each cycle did."""

    def __init__(self, command, format: str):
        self.command, self.format = command, format
        self.stdout, self.stderr, self.style = command.stdout, command.stderr, command.style

    def run(self, files, interval: float, **import_options) -> None:
        stop = threading.Event()
        handlers = {}
        try:
            for number in (signal.SIGTERM, signal.SIGINT):
                handlers[number] = signal.signal(number, lambda *_: stop.set())
        except ValueError:  # not the main thread (call_command from a worker): Ctrl-C is the caller's
            handlers = {}
        try:
            names = ", ".join(str(f.path) for f in files)
            self.stderr.write(f"Following {names} every {interval:g}s; SIGTERM or Ctrl-C stops.", style_func=str)
            follow_files(files, interval=interval, stop=stop, on_cycle=self.cycle, import_options=import_options)
        finally:
            for number, handler in handlers.items():
                signal.signal(number, handler)
        self.stderr.write("Stopped.", style_func=str)

    def cycle(self, cycle: Cycle) -> None:
        at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for followed, error in cycle.failures:
            self.stderr.write(self.style.ERROR(f"{at} {followed.path}: {error} (tried again every cycle)"))
        for followed in cycle.recovered:
            self.stderr.write(f"{at} {followed.path}: readable again", style_func=str)
        for _, result in cycle.results:
            for warning in result.warnings:
                self.stderr.write(self.style.WARNING(f"{at} warning: {warning}"))
        if not cycle.results:
            return
        if self.format == "json":
            imported = [
                {"path": str(f.path), **{name: getattr(r, name) for name, _ in _FIGURES}} for f, r in cycle.results
            ]
            self.stdout.write(json.dumps({"at": at, "imported": imported}))
            return
        parts = []
        for followed, result in cycle.results:
            figures = [text.format(getattr(result, name)) for name, text in _FIGURES if getattr(result, name)]
            if figures:
                parts.append(f"{followed.path}: {', '.join(figures)}")
        if parts:
            self.stdout.write(f"{at} " + "; ".join(parts))
