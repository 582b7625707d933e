"""Offer finished production answers to the playground's shadow sampling.

Called once a production answer is complete. It never awaits and never raises: prompts that
have not opted in (sample rate 0 on the resolved version's prompt) cost one attribute read;
for the others `production_answer` is sent in a background thread on a fresh context, after
the response has been handed back. The playground, above the gateway, listens: its receiver
makes the sampling decision, the pair and the Celery task.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.dispatch import Signal

from spend.models import Purpose

log = logging.getLogger(__name__)
_background: set[asyncio.Task] = set()

# Keywords: team_id, prompt_version_id, tier_name, request_body, output, model_name,
# cost_usd, request_id. Sent only for prompts whose shadow sample rate is above 0.
production_answer = Signal()


def _send(**kwargs: Any) -> None:
    try:
        production_answer.send_robust(sender=None, **kwargs)
    finally:
        close_old_connections()


def shadow_offer(call: Any, *, model: str, tier: str, output: str, cost: Decimal) -> None:
    try:
        version = call.prompt_version
        if call.purpose != Purpose.GATEWAY or version is None or not tier:
            return
        if not version.prompt.shadow_sample_rate:
            return
        work = sync_to_async(_send, thread_sensitive=False)(
            team_id=call.team_id,
            prompt_version_id=version.pk,
            tier_name=tier,
            request_body=call.body,
            output=output,
            model_name=model,
            cost_usd=cost,
            request_id=call.request_id,
        )
        task = asyncio.get_running_loop().create_task(work, context=contextvars.Context())
        _background.add(task)
        task.add_done_callback(_background.discard)
    except Exception:  # shadow sampling must never touch the production answer
        log.exception("shadow sampling could not be offered %s", call.request_id)
