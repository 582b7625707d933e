import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# `filesystem://` takes kombu's filesystem broker with messages that appear whole.
TRANSPORT_ALIASES["filesystem"] = "core.fsbroker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
