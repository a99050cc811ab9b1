"""Settings for the test suite: the real settings, with a throwaway secret and a fast hasher."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-" + "x" * 40)
# A developer's .env (written by the README's Run command) must not change what the tests see;
# child processes that use hermes_site.settings inherit this too.
os.environ["DJANGO_ENV_FILE"] = ""

from hermes_site.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# HERMES_TEST_DB_SUFFIX lets several test runs share one machine without sharing a test database.
_suffix = os.environ.get("HERMES_TEST_DB_SUFFIX", "")
if _suffix:
    _default = DATABASES["default"]  # noqa: F405
    if _default["ENGINE"].endswith("sqlite3"):
        _default["TEST"]["NAME"] = str(BASE_DIR / f".test-db{_suffix}.sqlite3")  # noqa: F405
    else:
        _default.setdefault("TEST", {})["NAME"] = f"test_{_default['NAME']}{_suffix}"

# The test client speaks plain HTTP; production settings (DEBUG off) redirect it to HTTPS.
SECURE_SSL_REDIRECT = False
