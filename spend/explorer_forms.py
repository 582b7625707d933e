"""The request explorer's filters, from the query string (the page and the API share them)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiKey, Team
from prompts.models import Prompt
from spend.explorer import MAX_PAGE_SIZE, PAGE_SIZE, SORTS, RequestFilters, Route, Status
from spend.models import Purpose

RANGES = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(days=1), "7d": dt.timedelta(days=7)}
RANGES |= {"30d": dt.timedelta(days=30), "90d": dt.timedelta(days=90)}
RANGE_CHOICES = [(name, name) for name in RANGES] + [("all", "all"), ("custom", "custom")]
DEFAULT_RANGE = "7d"


# `key:value` in the search box is a metadata search; anything else a request id's start.
_METADATA_SEARCH = re.compile(r"^\s*([A-Za-z0-9_.-]{1,64}):(.*)$")


def _search(text: str) -> dict[str, Any]:
    match = _METADATA_SEARCH.match(text)
    if match:
        return {"metadata": (match[1], match[2].strip())}
    return {"search": text.strip()}


class RequestFilterForm(forms.Form):
    """Every filter of the list. `teams` are the teams the caller may see; a team, key or
    prompt outside them is a 404, as if it did not exist."""

    range = forms.ChoiceField(choices=RANGE_CHOICES, required=False)
    since = forms.DateTimeField(required=False, help_text="With range=custom; local time.")
    until = forms.DateTimeField(required=False)
    team = forms.SlugField(required=False, max_length=64)
    key = forms.CharField(required=False, max_length=16, help_text="Key prefix (sb_...).")
    prompt = forms.SlugField(required=False, max_length=100, help_text="Prompt slug.")
    version = forms.IntegerField(required=False, min_value=1)
    model = forms.CharField(required=False, max_length=100)
    tier = forms.CharField(required=False, max_length=32)
    status = forms.ChoiceField(choices=[("", "any"), *Status.CHOICES], required=False)
    purpose = forms.ChoiceField(choices=[("", "any"), *Purpose.choices], required=False)
    rule = forms.CharField(required=False, max_length=100)
    route = forms.ChoiceField(choices=[("", "any"), *Route.CHOICES], required=False)
    min_cost = forms.DecimalField(required=False, min_value=0, max_digits=20, decimal_places=10)
    min_latency = forms.IntegerField(required=False, min_value=0, help_text="Milliseconds.")
    q = forms.CharField(
        required=False,
        max_length=200,
        help_text="Request id (or its start), or a metadata key:value (task_tag:invoice).",
    )
    sort = forms.ChoiceField(choices=[(s, s) for s in SORTS], required=False)
    cursor = forms.CharField(required=False, max_length=400)
    page_size = forms.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE)

    def __init__(self, *args, teams: list[Team], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teams = teams

    def clean(self) -> dict:
        data = super().clean() or {}
        preset = data.get("range") or (DEFAULT_RANGE if not data.get("since") else "custom")
        now = timezone.now()
        if preset == "custom":
            if data.get("since") is None:
                raise forms.ValidationError({"since": "A custom range needs a start."})
            if data.get("until") and data["until"] <= data["since"]:
                raise forms.ValidationError({"until": "Must be after the start."})
        elif preset == "all":
            data["since"] = data["until"] = None
        else:
            data["since"], data["until"] = now - RANGES[preset], None
        data["range"] = preset
        data["sort"] = data.get("sort") or "time"
        data["page_size"] = data.get("page_size") or PAGE_SIZE
        return data

    def request_filters(self) -> RequestFilters:
        """The validated filters; Http404 for a team, key or prompt the caller may not see."""
        data = self.cleaned_data
        team_ids = tuple(team.id for team in self.teams)
        if data.get("team"):
            team_ids = tuple(t.id for t in self.teams if t.slug == data["team"])
            if not team_ids:
                raise Http404("No such team.")
        key_id = None
        prompt_ids: tuple[int, ...] = ()
        if data.get("key"):
            key_id = (
                ApiKey.objects.filter(prefix=data["key"], team_id__in=team_ids)
                .values_list("id", flat=True)
                .first()
            )
            if key_id is None:
                raise Http404("No such key.")
        if data.get("prompt"):
            prompt_ids = tuple(
                Prompt.objects.filter(slug=data["prompt"], team_id__in=team_ids).values_list(
                    "id", flat=True
                )
            )
            if not prompt_ids:
                raise Http404("No such prompt.")
        return RequestFilters(
            team_ids=team_ids,
            since=data.get("since"),
            until=data.get("until"),
            api_key_id=key_id,
            prompt_ids=prompt_ids,
            version=data.get("version"),
            model=data.get("model") or "",
            tier=data.get("tier") or "",
            status=data.get("status") or "",
            purpose=data.get("purpose") or "",
            rule=data.get("rule") or "",
            route=data.get("route") or "",
            min_cost=data.get("min_cost"),
            min_latency_ms=data.get("min_latency"),
            **_search(data.get("q") or ""),
            sort=data["sort"],
        )
