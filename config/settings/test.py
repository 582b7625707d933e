"""Test settings.

Tests that serve the site with uvicorn, or run a Celery worker, in a subprocess share the
test database, cache prefix, queue and broker folder with it: the values are exported to
the environment here so that the subprocesses inherit them. The SQLite test database is
therefore a file, not in memory.
"""

import os
from pathlib import Path

os.environ.setdefault("SWITCHBOARD_TEST_RUN", str(os.getpid()))
_run = os.environ["SWITCHBOARD_TEST_RUN"]
os.environ.setdefault("CACHE_KEY_PREFIX", f"sbtest{_run}")
os.environ.setdefault("CELERY_QUEUE", f"test{_run}")
os.environ.setdefault(
    "CELERY_FS_DIR", str(Path(__file__).resolve().parents[2] / "var" / f"celery-test-{_run}")
)
os.environ.setdefault(
    "USAGE_SPOOL_DIR", str(Path(__file__).resolve().parents[2] / "var" / f"spool-test-{_run}")
)

from .base import *  # noqa: E402, F403
from .base import DATABASES, VAR_DIR, env  # noqa: E402

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {
        "NAME": env("TEST_DATABASE_NAME", default=str(VAR_DIR / "test.sqlite3"))
    }
else:
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DATABASE_NAME", default="test_switchboard")}

# A change reaches the test's site within this (tests wait for it: wait_for_budgets).
HOT_CHECK_SECONDS = env.float("HOT_CHECK_SECONDS", default=0.2)

# Batches (gateway.batches) are polled this often: the simulator finishes one in about 1 s.
GATEWAY_BATCH_POLL_SECONDS = 0.2
