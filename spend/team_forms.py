"""The team admin's budget and alert-target forms."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from spend.models import Budget

# A sane ceiling for a budget typed into a form (the API and `set_budget` take larger ones).
MAX_BUDGET_USD = Decimal("1000000")


class BudgetForm(forms.Form):
    limit_usd = forms.DecimalField(
        label="Limit (USD)",
        min_value=Decimal("0"),
        max_value=MAX_BUDGET_USD,
        max_digits=17,
        decimal_places=4,
    )
    period = forms.ChoiceField(choices=Budget.Period.choices, initial=Budget.Period.MONTHLY)
    action = forms.ChoiceField(
        choices=Budget.Action.choices,
        initial=Budget.Action.BLOCK,
        label="At the limit",
        help_text="Block refuses requests; downgrade sends them to a cheaper tier.",
    )
    downgrade_tier = forms.ChoiceField(required=False, label="Downgrade to")
    soft_threshold_pct = forms.IntegerField(
        label="Warn at (%)", min_value=1, max_value=100, initial=80
    )

    def __init__(self, *args, tiers: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["downgrade_tier"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "—"), *((t, t) for t in tiers)]

    @classmethod
    def for_budget(cls, budget: Budget | None, *, tiers: list[str]) -> BudgetForm:
        if budget is None:
            return cls(tiers=tiers)
        return cls(
            tiers=tiers,
            initial={
                "limit_usd": budget.limit_usd.normalize(),
                "period": budget.period,
                "action": budget.action,
                "downgrade_tier": budget.downgrade_tier.name if budget.downgrade_tier else "",
                "soft_threshold_pct": int(budget.soft_threshold * 100),
            },
        )

    def clean(self) -> dict:
        data = super().clean() or {}
        if data.get("action") == Budget.Action.DOWNGRADE and not data.get("downgrade_tier"):
            self.add_error("downgrade_tier", "A downgrade budget needs a tier to downgrade to.")
        return data

    @property
    def soft_threshold(self) -> Decimal:
        return Decimal(self.cleaned_data["soft_threshold_pct"]) / 100


class AlertTargetForm(forms.Form):
    name = forms.CharField(max_length=100)
    emails = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Comma- or newline-separated addresses.",
    )
    webhook_url = forms.URLField(
        required=False, max_length=500, assume_scheme="https", label="Webhook URL"
    )

    def clean_emails(self) -> str:
        emails = [e.strip() for e in self.cleaned_data["emails"].replace("\n", ",").split(",")]
        emails = [e for e in emails if e]
        validator = forms.EmailField()
        for email in emails:
            validator.clean(email)
        return ", ".join(emails)

    def clean(self) -> dict:
        data = super().clean() or {}
        if not self.errors and not data.get("emails") and not data.get("webhook_url"):
            raise forms.ValidationError("Give at least one email address or a webhook URL.")
        return data
