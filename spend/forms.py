"""The dashboard's and the exports' filters, from the query string."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.http import Http404
from django.utils import timezone

from accounts.models import Team
from prompts.models import Prompt
from routing.models import Policy
from spend.models import Purpose
from spend.rollups import local_day
from spend.selectors import UsageFilters

MAX_RANGE_DAYS = 400


class Range:
    TODAY = "today"
    LAST_7 = "7d"
    LAST_30 = "30d"
    MONTH = "mtd"
    CUSTOM = "custom"

    CHOICES = [
        (TODAY, "Today"),
        (LAST_7, "7d"),
        (LAST_30, "30d"),
        (MONTH, "Month to date"),
        (CUSTOM, "Custom"),
    ]


def range_days(preset: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """The inclusive [first, last] local days of a preset; 7d and 30d end today."""
    if preset == Range.TODAY:
        return today, today
    if preset == Range.LAST_30:
        return today - dt.timedelta(days=29), today
    if preset == Range.MONTH:
        return today.replace(day=1), today
    return today - dt.timedelta(days=6), today


class UsageFilterForm(forms.Form):
    """Filters shared by the dashboard and the CSV exports.

    `teams` are the teams the user may see; a team or prompt outside them is a 404, as if it
    did not exist."""

    range = forms.ChoiceField(choices=Range.CHOICES, required=False)
    start = forms.DateField(required=False)
    end = forms.DateField(required=False)
    team = forms.SlugField(required=False, max_length=64)
    prompt = forms.IntegerField(required=False, min_value=1)
    model = forms.CharField(required=False, max_length=100)
    tier = forms.CharField(required=False, max_length=32)
    purpose = forms.ChoiceField(choices=[("", "any"), *Purpose.choices], required=False)

    def __init__(self, *args, teams: list[Team], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teams = teams
        self.selected_team: Team | None = None
        self.selected_prompt: Prompt | None = None

    def clean(self) -> dict:
        data = super().clean() or {}
        today = local_day(timezone.now())
        preset = data.get("range") or Range.LAST_7
        if preset == Range.CUSTOM or (data.get("start") and not data.get("range")):
            preset = Range.CUSTOM
            start, end = data.get("start"), data.get("end") or data.get("start")
            if start is None:
                raise forms.ValidationError({"start": "A custom range needs a start date."})
            if end < start:
                raise forms.ValidationError({"end": "The end date is before the start date."})
            if (end - start).days >= MAX_RANGE_DAYS:
                raise forms.ValidationError(
                    {"end": f"A range can span at most {MAX_RANGE_DAYS} days."}
                )
        else:
            start, end = range_days(preset, today)
        data["range"], data["start"], data["end"] = preset, start, end
        return data

    def usage_filters(self) -> UsageFilters:
        """The validated filters; raises Http404 for a team or prompt the user may not see."""
        data = self.cleaned_data
        team_ids = tuple(team.id for team in self.teams)
        if data.get("team"):
            self.selected_team = next((t for t in self.teams if t.slug == data["team"]), None)
            if self.selected_team is None:
                raise Http404("No such team.")
            team_ids = (self.selected_team.id,)
        if data.get("prompt"):
            self.selected_prompt = (
                Prompt.objects.filter(id=data["prompt"], team_id__in=team_ids)
                .select_related("team")
                .first()
            )
            if self.selected_prompt is None:
                raise Http404("No such prompt.")
        return UsageFilters(
            start_day=data["start"],
            end_day=data["end"],
            team_ids=team_ids,
            prompt_id=self.selected_prompt.id if self.selected_prompt else None,
            model_name=data.get("model") or "",
            tier_name=data.get("tier") or "",
            purpose=data.get("purpose") or "",
        )


class ReplayForm(forms.Form):
    """A what-if replay: a proposed policy over the last N days of the user's teams."""

    policy = forms.ModelChoiceField(queryset=Policy.objects.order_by("-is_active", "name"))
    days = forms.TypedChoiceField(
        choices=[(1, "1 day"), (7, "7 days"), (14, "14 days"), (30, "30 days"), (90, "90 days")],
        coerce=int,
        initial=7,
    )
    team = forms.SlugField(required=False, max_length=64)

    def __init__(self, *args, teams: list[Team], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.teams = teams

    def clean_team(self) -> list[Team]:
        slug = self.cleaned_data.get("team")
        if not slug:
            return self.teams
        chosen = [t for t in self.teams if t.slug == slug]
        if not chosen:
            raise Http404("No such team.")
        return chosen
