from __future__ import annotations

from typing import Any

from django import forms

from accounts.models import Team
from core.errors import BadRequest
from core.limits import metadata_bounded
from core.patterns import pattern_problem
from prompts.models import Prompt, TaskTag
from routing.models import Capability, Model, Rule, Tier

TRISTATE = [("", "any"), ("yes", "yes, tools present"), ("no", "no tools")]


class RuleForm(forms.Form):
    """Every condition and action of a rule. Blank conditions mean 'any'."""

    name = forms.CharField(max_length=100)
    enabled = forms.BooleanField(required=False, initial=True)
    team = forms.ModelChoiceField(Team.objects.all(), required=False, empty_label="any team")
    prompt = forms.ModelChoiceField(
        Prompt.objects.select_related("team").order_by("team__name", "slug"),
        required=False,
        empty_label="any prompt",
    )
    task_tags = forms.MultipleChoiceField(
        choices=TaskTag.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    min_input_tokens = forms.IntegerField(min_value=0, required=False)
    max_input_tokens = forms.IntegerField(min_value=0, required=False)
    tools_present = forms.ChoiceField(choices=TRISTATE, required=False)
    tool_types = forms.CharField(
        required=False,
        help_text="Comma-separated, e.g. computer_use, web_search, function.",
    )
    required_capability = forms.ChoiceField(
        choices=[("", "none"), *Capability.choices], required=False
    )
    action = forms.ChoiceField(choices=Rule.Action.choices, widget=forms.RadioSelect)
    target_tier = forms.ModelChoiceField(Tier.objects.order_by("rank"), required=False)
    target_model = forms.ModelChoiceField(Model.objects.order_by("name"), required=False)
    escalate_on_failed_check = forms.BooleanField(
        required=False, help_text="Invalid JSON, empty output or refusal → the next tier."
    )
    allow_tier_fallback = forms.BooleanField(
        required=False, initial=True, help_text="When every model of the tier fails."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt"].label_from_instance = lambda p: f"{p.team.slug} / {p.slug}"

    @classmethod
    def initial_for(cls, rule: Rule) -> dict[str, Any]:
        return {
            "name": rule.name,
            "enabled": rule.enabled,
            "team": rule.team_id,
            "prompt": rule.prompt_id,
            "task_tags": rule.task_tags,
            "min_input_tokens": rule.min_input_tokens,
            "max_input_tokens": rule.max_input_tokens,
            "tools_present": {None: "", True: "yes", False: "no"}[rule.tools_present],
            "tool_types": ", ".join(rule.tool_types),
            "required_capability": rule.required_capability,
            "action": rule.action,
            "target_tier": rule.target_tier_id,
            "target_model": rule.target_model_id,
            "escalate_on_failed_check": rule.escalate_on_failed_check,
            "allow_tier_fallback": rule.allow_tier_fallback,
        }

    def clean_tool_types(self) -> list[str]:
        raw = self.cleaned_data["tool_types"]
        return [part.strip() for part in raw.split(",") if part.strip()]

    def clean_tools_present(self) -> bool | None:
        return {"": None, "yes": True, "no": False}[self.cleaned_data["tools_present"]]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action")
        if action == Rule.Action.TIER and not data.get("target_tier"):
            self.add_error("target_tier", "Choose the tier this rule routes to.")
        if action == Rule.Action.MODEL and not data.get("target_model"):
            self.add_error("target_model", "Choose the model this rule routes to.")
        return data


class MetadataConditionForm(forms.Form):
    key = forms.CharField(max_length=100, required=False)
    op = forms.ChoiceField(choices=Rule.MetadataOp.choices, required=False)
    value = forms.CharField(
        max_length=500,
        required=False,
        help_text="in: comma-separated; gt/lt: a number; regex: a pattern",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        key, op, raw = data.get("key", "").strip(), data.get("op"), data.get("value", "")
        if not key:
            if raw.strip():
                self.add_error("key", "A condition needs a key.")
            data["condition"] = None
            return data
        value: Any = raw
        if op == Rule.MetadataOp.IN:
            value = [part.strip() for part in raw.split(",") if part.strip()]
        elif op in (Rule.MetadataOp.GT, Rule.MetadataOp.LT):
            try:
                number = float(raw)
            except ValueError:
                self.add_error("value", f"'{op}' needs a number.")
                return data
            value = int(number) if number.is_integer() and "." not in raw else number
        elif op == Rule.MetadataOp.REGEX and (problem := pattern_problem(raw)):
            self.add_error("value", f"Invalid regular expression: {problem}.")
            return data
        data["condition"] = {"key": key, "op": op or Rule.MetadataOp.EQ, "value": value}
        return data


MetadataFormSet = forms.formset_factory(MetadataConditionForm, extra=2, can_delete=True)


def metadata_initial(rule: Rule | None) -> list[dict[str, Any]]:
    rows = []
    for condition in rule.metadata_conditions if rule else []:
        value = condition.get("value")
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        rows.append({"key": condition.get("key"), "op": condition.get("op"), "value": text})
    return rows


class RouteTestForm(forms.Form):
    """A sample request for the 'test this rule' box (what the explain endpoint takes)."""

    team = forms.ModelChoiceField(Team.objects.all(), required=False, empty_label="no team")
    prompt = forms.ModelChoiceField(
        Prompt.objects.select_related("team").order_by("team__name", "slug"),
        required=False,
        empty_label="no prompt",
    )
    task_tag = forms.ChoiceField(choices=[("", "none"), *TaskTag.choices], required=False)
    input = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    tools = forms.CharField(
        required=False, help_text="Tool types, comma-separated (e.g. function, computer_use)."
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One key=value per line.",
    )

    def clean_tools(self) -> list[str]:
        return [part.strip() for part in self.cleaned_data["tools"].split(",") if part.strip()]

    def clean_metadata(self) -> dict[str, str]:
        metadata = {}
        for number, line in enumerate(self.cleaned_data["metadata"].splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"Line {number}: write key=value.")
            metadata[key.strip()] = value.strip()
        try:
            return metadata_bounded(metadata)
        except BadRequest as exc:
            raise forms.ValidationError(exc.message) from None


class PriceSheetUploadForm(forms.Form):
    file = forms.FileField(help_text="Our YAML/JSON sheet, or LiteLLM's price map (JSON).")
    effective_from = forms.DateTimeField(
        required=False, help_text="For rows without a date (LiteLLM's map): default now (UTC)."
    )
    create_models = forms.BooleanField(
        required=False, help_text="Also add models the catalog lacks (LiteLLM's map)."
    )
