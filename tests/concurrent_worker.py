"""A worker process for the concurrency tests: appends batches through the real save path.

Run as ``python -m tests.concurrent_worker DB_NAME WORKER SESSION_ID BATCHES PER_BATCH START_AT``.
It waits until START_AT (Unix time) so that all workers hit the database together.
"""

import os
import sys
import time


def main(argv: list[str]) -> None:
    db_name, worker, session_id, batches, per_batch, start_at = argv
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    from sessions_app.services import append_messages

    created = 0
    time.sleep(max(0.0, float(start_at) - time.time()))
    for batch in range(int(batches)):
        messages = [
            {"role": "user", "content": f"w{worker}-b{batch}-m{m}", "tool_calls": [{"id": "t"}] if m == 0 else None}
            for m in range(int(per_batch))
        ]
        _, was_created = append_messages(session_id, messages, model=f"model-{worker}", source="cli")
        created += was_created
    print(created)


if __name__ == "__main__":
    main(sys.argv[1:])
