"""Runs ``manage.py`` command lines one after another in this one process, as ``manage.py`` would
run each (its ``main()``, real stdout and stderr), and marks on stderr where each ends and how.

Run as ``python -m tests.command_driver DB_NAME ARGV_FILE``: ARGV_FILE is JSON, a list of argument
lists (lone surrogates in them stand for the undecodable bytes of a real command line, as Python
decodes ``sys.argv``). After each run a line ``@@@ <index> <exit status>`` is written to stderr and
stdout; a run that raised instead of exiting gets its traceback printed and the status
``traceback``. One process for many command lines: starting Django for each would take minutes.
"""

import json
import os
import sys
import traceback


def main(db_name: str, argv_file: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    django.setup()
    import manage

    with open(argv_file, encoding="utf-8") as file:
        command_lines = json.load(file)
    for index, argv in enumerate(command_lines):
        sys.argv = ["manage.py", *argv]
        try:
            manage.main()
            status = "0"
        except SystemExit as exc:
            status = str(exc.code if isinstance(exc.code, int) else 1)
        except BaseException:
            traceback.print_exc()
            status = "traceback"
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
            stream.write(f"\n@@@ {index} {status}\n")
            stream.flush()


if __name__ == "__main__":
    main(*sys.argv[1:])
