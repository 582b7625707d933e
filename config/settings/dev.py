from core.logging import logging_config

from .base import *  # noqa: F403
from .base import env

LOGGING = logging_config(
    level=env("LOG_LEVEL", default="INFO"), fmt=env("LOG_FORMAT", default="plain")
)

DEBUG = env.bool("DEBUG", default=True)
