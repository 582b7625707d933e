"""The extension point the playground offers the evaluation app above it, filled at start-up.

The playground must not import `evals`; `evals` registers an `Evaluation` here in its
`AppConfig.ready`, and the playground calls it where evaluation joins in: a finished batch run,
a fresh shadow pair, the recommendation's evidence and the batch pages. Without a registered
one, `NoEvaluation` answers: nothing judged."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class JobVerdicts:
    """The judge's view of a batch run: per column (win rate against the reference column)
    and per row (each cheap column's outcome, the reasons for the drawer)."""

    reference_column: int | None = None
    columns: dict[int, dict[str, Any]] = field(default_factory=dict)
    rows: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)
    evaluated_rows: int = 0


class NoEvaluation:
    def job_finished(self, *, job_id: int) -> bool:
        """A batch run finished: evaluate its rows (in the background). True when an
        evaluation was queued."""
        return False

    async def shadow_pair_done(
        self, *, pair: Any, production_output: str, shadow_output: str
    ) -> None:
        """A shadow pair has both answers (before its content may be dropped)."""

    def judged_cases(
        self, *, prompt: Any, cheap_tier: str, flagship_tier: str
    ) -> dict[tuple, bool]:
        """Judge outcomes as evidence: ("batch", job_id, row_index) or ("shadow", pair_id) ->
        the cheap answer is at least as good."""
        return {}

    def agreement(self, *, prompt: Any) -> Any:
        """How the judge agrees with people's votes on this prompt's rows, or None."""
        return None

    def job_verdicts(self, *, job: Any, row_indexes: list[int] | None = None) -> JobVerdicts:
        return JobVerdicts()


_registered: list[Any] = []


def evaluation_register(provider: Any) -> None:
    _registered[:] = [provider]


def evaluation() -> Any:
    return _registered[0] if _registered else NoEvaluation()
