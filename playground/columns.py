"""What a column runs on: a tier or a catalog model, with optional temperature and effort."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import BadRequest

REASONING_EFFORTS = ("", "none", "minimal", "low", "medium", "high", "xhigh")
DEFAULT_COLUMNS = (("tier", "mini"), ("tier", "flagship"))
LETTERS = "ABCD"
AUTO = "auto"  # the routing policy (or the prompt version's own tier) decides


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    tier: str = ""
    model: str = ""
    temperature: Decimal | None = None
    reasoning_effort: str = ""

    @property
    def label(self) -> str:
        base = self.model or (f"tier:{self.tier}" if self.tier else "auto")
        extras = []
        if self.temperature is not None:
            extras.append(f"t={self.temperature}")
        if self.reasoning_effort:
            extras.append(f"effort={self.reasoning_effort}")
        return f"{base} ({', '.join(extras)})" if extras else base

    @property
    def target(self) -> str:
        """The value of the target select: `tier:<name>`, `model:<name>` or `auto`."""
        if self.model:
            return f"model:{self.model}"
        return f"tier:{self.tier}" if self.tier else AUTO

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "temperature": None if self.temperature is None else str(self.temperature),
            "reasoning_effort": self.reasoning_effort,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return column_spec_parse(
            target=_target_of(data),
            temperature=data.get("temperature"),
            reasoning_effort=data.get("reasoning_effort") or "",
        )


def _target_of(data: dict[str, Any]) -> str:
    if data.get("target"):
        return str(data["target"])
    if data.get("model"):
        return f"model:{data['model']}"
    if data.get("tier"):
        return f"tier:{data['tier']}"
    return AUTO


def column_spec_parse(
    *, target: str, temperature: Any = None, reasoning_effort: str = ""
) -> ColumnSpec:
    """Parse one column's settings as the form and the API spell them; BadRequest if invalid.

    Whether the tier or model exists is checked by `column_specs_check` (it needs the DB)."""
    kind, _, name = (target or "").partition(":")
    if target == AUTO:
        kind, name = AUTO, ""
    elif kind not in ("tier", "model") or not name:
        raise BadRequest(
            f"A column needs a tier, a model or auto (got {target!r}).", param="target"
        )
    temp: Decimal | None = None
    if temperature not in (None, ""):
        try:
            temp = Decimal(str(temperature))
        except InvalidOperation:
            raise BadRequest("Temperature must be a number.", param="temperature") from None
        if not Decimal("0") <= temp <= Decimal("2"):
            raise BadRequest("Temperature must be between 0 and 2.", param="temperature")
    if reasoning_effort not in REASONING_EFFORTS:
        raise BadRequest(
            f"Reasoning effort must be one of {', '.join(e for e in REASONING_EFFORTS if e)}.",
            param="reasoning_effort",
        )
    return ColumnSpec(
        tier=name if kind == "tier" else "",
        model=name if kind == "model" else "",
        temperature=temp,
        reasoning_effort=reasoning_effort,
    )


def column_specs_check(specs: list[ColumnSpec], *, minimum: int = 1) -> None:
    """Between `minimum` and four columns, each naming a tier or an active catalog model."""
    from routing.models import Model, Tier

    if not minimum <= len(specs) <= len(LETTERS):
        raise BadRequest(f"Choose between {minimum} and {len(LETTERS)} columns.")
    tiers = set(Tier.objects.values_list("name", flat=True))
    models = set(Model.objects.filter(is_active=True).values_list("name", flat=True))
    for letter, spec in zip(LETTERS, specs, strict=False):
        where = f"Column {letter}: " if len(specs) > 1 else ""
        if spec.tier and spec.tier not in tiers:
            raise BadRequest(
                f"{where}No tier named {spec.tier!r} (tiers: {', '.join(sorted(tiers))}).",
                param="tier",
            )
        if spec.model and spec.model not in models:
            raise BadRequest(f"{where}No active model named {spec.model!r}.", param="model")


def replay_columns(*, model: str, tier: str, tiers: list[str]) -> list[ColumnSpec]:
    """Columns that compare a logged request: its own model first, then the other tiers
    (cheapest first), at most four."""
    others = [ColumnSpec(tier=name) for name in tiers if name != tier]
    first = ColumnSpec(model=model) if model else ColumnSpec(tier=tier)
    return [first, *others][: len(LETTERS)]
