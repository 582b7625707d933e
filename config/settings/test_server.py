"""Settings for a uvicorn or Celery subprocess started by the tests: test settings, but the
database named by DATABASE_URL is used as it is (it is already the test database)."""

from .test import *  # noqa: F403
from .test import DATABASES

DATABASES["default"].pop("TEST", None)
