"""Settings for a uvicorn or Celery subprocess started by the tests: test settings, but the
database named by DATABASE_URL is used as it is (it is already the test database)."""

from .test import *  # noqa: F403
from .test import DATABASES, env

DATABASES["default"].pop("TEST", None)

# A test reads the mail a subprocess sends from files (tests/conftest.py: mail_dir).
if env("EMAIL_FILE_PATH", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = env("EMAIL_FILE_PATH")
