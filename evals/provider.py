"""The evaluation app as the playground sees it (`playground.hooks`), registered at start-up."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from evals import runner, selectors
from evals.models import Evaluator
from playground.hooks import JobVerdicts

logger = logging.getLogger(__name__)


class Evaluation:
    def job_finished(self, *, job_id: int) -> bool:
        from playground.models import Job

        prompt_id = (
            Job.objects.filter(pk=job_id)
            .values_list("prompt_version__prompt_id", flat=True)
            .first()
        )
        if prompt_id and Evaluator.objects.filter(prompt_id=prompt_id, enabled=True).exists():
            from evals.tasks import job_evaluate

            transaction.on_commit(lambda: job_evaluate.delay(job_id))
            return True
        return False

    async def shadow_pair_done(
        self, *, pair: Any, production_output: str, shadow_output: str
    ) -> None:
        try:
            await runner.shadow_pair_evaluate(
                pair=pair, production_output=production_output, shadow_output=shadow_output
            )
        except Exception:  # judging is extra: the pair itself must still be stored
            logger.exception("shadow pair %s: evaluation failed", pair.pk)

    def judged_cases(
        self, *, prompt: Any, cheap_tier: str, flagship_tier: str
    ) -> dict[tuple, bool]:
        return selectors.judged_cases(
            prompt=prompt, cheap_tier=cheap_tier, flagship_tier=flagship_tier
        )

    def agreement(self, *, prompt: Any) -> Any:
        return selectors.agreement(prompt=prompt)

    def job_verdicts(self, *, job: Any, row_indexes: list[int] | None = None) -> JobVerdicts:
        return selectors.job_verdicts(job=job, row_indexes=row_indexes)
