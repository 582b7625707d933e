from __future__ import annotations

from django import forms


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
    retention_days = forms.IntegerField(
        min_value=1, max_value=3650, help_text="Stored bodies are purged after this many days."
    )
