"""The playground's writes and workflows, one module per concern, gathered here so callers
say `services.<name>`."""

from playground.services.comparisons import (
    column_metrics,
    column_spec_of,
    comparison_column_prepare,
    comparison_column_stop,
    comparison_column_stream,
    comparison_create,
    comparison_save,
    prompt_version_from_column,
    vote_cast,
)
from playground.services.datasets import dataset_create, dataset_row_errors
from playground.services.jobs import (
    batch_compare_create,
    job_cancel,
    job_counters_refresh,
    job_enqueue,
    job_evaluate_request,
    job_submit,
    jobs_resume_stale,
    request_hash,
    row_vote_cast,
)
from playground.services.recommendations import recommendation_apply, shadow_rate_set
from playground.services.retention import playground_content_purge
from playground.services.shadow import (
    shadow_maybe_enqueue,
    shadow_pair_review,
    shadow_pair_run,
)
from playground.services.variables import invalid_variables_text, variables_check

__all__ = [
    "batch_compare_create",
    "column_metrics",
    "column_spec_of",
    "comparison_column_prepare",
    "comparison_column_stop",
    "comparison_column_stream",
    "comparison_create",
    "comparison_save",
    "dataset_create",
    "dataset_row_errors",
    "invalid_variables_text",
    "job_cancel",
    "job_counters_refresh",
    "job_enqueue",
    "job_evaluate_request",
    "job_submit",
    "jobs_resume_stale",
    "playground_content_purge",
    "prompt_version_from_column",
    "recommendation_apply",
    "request_hash",
    "row_vote_cast",
    "shadow_maybe_enqueue",
    "shadow_pair_review",
    "shadow_pair_run",
    "shadow_rate_set",
    "variables_check",
    "vote_cast",
]
