"""Serializer fields shared by the API apps."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from core.limits import SLUG_MAX


class _StrictText:
    """DRF's CharField turns a JSON number into text (`12` → "12"): a request that sends a
    number where the API documents a string is a mistake, so it is refused instead."""

    default_error_messages: dict[str, Any] = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(_StrictText, serializers.CharField):
    pass


class StrictSlugField(_StrictText, serializers.SlugField):
    """A slug of at most SLUG_MAX characters unless the field says less (a label: LABEL_MAX)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", SLUG_MAX)
        super().__init__(**kwargs)
