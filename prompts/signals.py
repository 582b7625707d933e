"""Keep the gateway's resolve cache honest: any write to a label or version, from a service,
the admin or an import, forgets the cached answers it changes once the write commits."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from prompts.models import Label, Prompt, PromptVersion
from prompts.selectors import resolve_cache_forget


def _forget_later(*, prompt: Prompt, label: str | None = None, version: int | None = None):
    team_id, slug = prompt.team_id, prompt.slug
    transaction.on_commit(
        lambda: resolve_cache_forget(team_id=team_id, slug=slug, label=label, version=version)
    )


@receiver([post_save, post_delete], sender=Label)
def label_changed(sender: Any, instance: Label, **kwargs: Any) -> None:
    _forget_later(prompt=instance.prompt, label=instance.name)


@receiver([post_save, post_delete], sender=PromptVersion)
def version_changed(sender: Any, instance: PromptVersion, **kwargs: Any) -> None:
    _forget_later(prompt=instance.prompt, version=instance.number)
