"""Peak memory of ``import_hermes`` on a state.db of a few large rows: the bytes read per page are bounded.

    .venv/bin/python bench/bench_import_memory.py [--rows 20] [--mib 20] [--batch-size 2000]

Builds a state.db in a private temporary directory with one session and ``--rows`` messages of
``--mib`` MiB of content each (over the 4 Mi characters the save path accepts, so every one is
read, refused and counted), imports it into a fresh SQLite database, and prints the process's
peak RSS (``resource.getrusage``) before and after the import. Without a byte budget per page, a
default batch reads every row of the file at once (20 x 20 MiB: ~400 MiB and more).
"""

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build_source(path: Path, rows: int, mib: int) -> None:
    from tests.hermes_fixtures import SCHEMAS

    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMAS["current"])
    conn.execute("INSERT INTO sessions (id, source, started_at) VALUES ('big', 'cli', 1767225600.0)")
    for i in range(rows):
        # zeroblob -> text in SQLite itself: the builder never holds a large row in Python.
        conn.execute(
            "INSERT INTO messages (session_id, role, content, timestamp)"
            " VALUES ('big', 'user', replace(hex(zeroblob(?)), '00', 'ab'), ?)",
            (mib * 1024 * 1024 // 2, 1767225601.0 + i),  # hex() doubles the length
        )
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20, help="Large message rows in the generated state.db.")
    parser.add_argument("--mib", type=int, default=20, help="MiB of content per large row.")
    parser.add_argument("--batch-size", type=int, default=2000, help="Importer batch size.")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hermes_bench_memory_"))
    source, target = tmp / "state.db", tmp / "target.sqlite3"
    os.environ["DATABASE_URL"] = f"sqlite:///{target}"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + "x" * 40)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hermes_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from sessions_app.importers import import_hermes_db

    build_source(source, args.rows, args.mib)
    call_command("migrate", verbosity=0)
    before = peak_rss_mib()
    t0 = time.perf_counter()
    result = import_hermes_db(source, batch_size=args.batch_size)
    elapsed = time.perf_counter() - t0
    print(
        f"source: {source.stat().st_size / 2**20:,.0f} MiB, {args.rows} rows of {args.mib} MiB;"
        f" imported {result.messages_imported}, skipped {result.messages_skipped} in {elapsed:.1f}s"
    )
    print(f"peak RSS: {before:,.0f} MiB before the import, {peak_rss_mib():,.0f} MiB after")
    for suffix in ("", "-wal", "-shm"):
        for path in (source, target):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
