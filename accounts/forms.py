from __future__ import annotations

from django import forms

from accounts.models import Membership


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'support-bot prod'.")
    rate_limit_rpm = forms.IntegerField(
        min_value=1, required=False, label="Requests per minute", help_text="Blank: no limit."
    )
    rate_limit_tpm = forms.IntegerField(
        min_value=1, required=False, label="Tokens per minute", help_text="Blank: no limit."
    )


class ContentSettingsForm(forms.Form):
    store_content = forms.BooleanField(
        required=False,
        label="Store request and response bodies",
        help_text="Off by default. Prompts can opt in on their own.",
    )
    no_content = forms.BooleanField(
        required=False,
        label="Store no content anywhere",
        help_text="No prompt or answer text is kept: not in the usage log, the playground, "
        "batch and job results or shadow samples, whatever a prompt opts into. Live "
        "comparisons still show their answers while they run.",
    )
    retention_days = forms.IntegerField(
        min_value=1, max_value=3650, help_text="Stored bodies are purged after this many days."
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("no_content") and data.get("store_content"):
            self.add_error("store_content", "A team that stores no content stores no bodies.")
        return data


class MemberAddForm(forms.Form):
    identifier = forms.CharField(
        max_length=254, label="Username or email", help_text="Someone who can already log in."
    )
    role = forms.ChoiceField(choices=Membership.TeamRole.choices, initial="member")


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.TeamRole.choices)


class KeyLimitsForm(forms.Form):
    rate_limit_rpm = forms.IntegerField(
        min_value=1, max_value=10_000_000, required=False, label="Requests per minute"
    )
    rate_limit_tpm = forms.IntegerField(
        min_value=1, max_value=1_000_000_000, required=False, label="Tokens per minute"
    )
