from core.logging import logging_config

from .base import *  # noqa: F403
from .base import env

LOGGING = logging_config(
    level=env("LOG_LEVEL", default="INFO"), fmt=env("LOG_FORMAT", default="plain")
)

DEBUG = env.bool("DEBUG", default=True)

# Mail goes to the console unless EMAIL_URL says otherwise: under `make run` the alerts the
# Celery worker sends show in its output.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
