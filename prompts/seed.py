"""The demo team's sample prompts (DESIGN.md lists them; scripts and tests rely on them)."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Team, User
from prompts.models import Label, Prompt
from prompts.services import label_move, prompt_create, prompt_version_create

SAMPLE_PROMPTS = [
    {
        "slug": "support-triage",
        "name": "Support triage",
        "task_tag": "classification",
        "description": "Classify an inbound support message by category and urgency.",
        "system_template": "You triage customer support messages. Answer with JSON only.",
        "user_template": "Channel: {{ channel }}\nMessage:\n{{ message }}",
        "variables": [
            {"name": "message", "type": "string", "required": True, "max_length": 4000},
            {
                "name": "channel",
                "type": "enum",
                "enum": ["email", "chat", "phone"],
                "default": "email",
            },
        ],
        "max_output_tokens": 200,
        "response_schema": {
            "type": "object",
            "properties": {
                "category": {
                    "type": "string",
                    "enum": ["billing", "bug", "account", "feature", "other"],
                },
                "urgency": {"type": "string", "enum": ["low", "medium", "high"]},
            },
            "required": ["category", "urgency"],
            "additionalProperties": False,
        },
    },
    {
        "slug": "invoice-extract",
        "name": "Invoice extraction",
        "task_tag": "extraction",
        "description": "Pull vendor, total, currency and due date out of an invoice.",
        "system_template": "Extract the invoice fields. Answer with JSON only.",
        "user_template": "{{ document }}",
        "variables": [{"name": "document", "type": "string", "required": True}],
        "max_output_tokens": 300,
        "response_schema": {
            "type": "object",
            "properties": {
                "vendor": {"type": "string"},
                "total": {"type": "number"},
                "currency": {"type": "string"},
                "due_date": {"type": "string", "format": "date"},
            },
            "required": ["vendor", "total", "currency", "due_date"],
            "additionalProperties": False,
        },
    },
    {
        "slug": "meeting-summary",
        "name": "Meeting summary",
        "task_tag": "summarization",
        "description": "Summarize a meeting transcript.",
        "system_template": "You write short, factual meeting summaries.",
        "user_template": "Summarize in at most {{ max_words }} words:\n\n{{ transcript }}",
        "variables": [
            {"name": "transcript", "type": "string", "required": True},
            {"name": "max_words", "type": "integer", "default": 100},
        ],
        "max_output_tokens": 600,
        "response_schema": None,
    },
    {
        "slug": "deep-analysis",
        "name": "Deep analysis",
        "task_tag": "reasoning",
        "description": "Think a hard question through.",
        "system_template": "You are a careful analyst. Reason step by step, then answer.",
        "user_template": "{{ question }}{% if context %}\n\nContext:\n{{ context }}{% endif %}",
        "variables": [
            {"name": "question", "type": "string", "required": True},
            {"name": "context", "type": "string", "required": False},
        ],
        "max_output_tokens": 4000,
        "reasoning_effort": "high",
        "response_schema": None,
    },
]


@transaction.atomic
def seed_prompts(*, team: Team, author: User | None) -> None:
    """Create each sample prompt that does not exist yet, with v1 published to production."""
    for spec in SAMPLE_PROMPTS:
        if Prompt.objects.filter(team=team, slug=spec["slug"]).exists():
            continue
        prompt = prompt_create(
            team=team,
            slug=spec["slug"],
            name=spec["name"],
            task_tag=spec["task_tag"],
            description=spec["description"],
            actor=author,
        )
        version = prompt_version_create(
            prompt=prompt,
            author=author,
            system_template=spec["system_template"],
            user_template=spec["user_template"],
            variables=spec["variables"],
            max_output_tokens=spec["max_output_tokens"],
            reasoning_effort=spec.get("reasoning_effort", ""),
            response_schema=spec["response_schema"],
            change_note="Demo data",
        )
        label_move(prompt=prompt, label=Label.PRODUCTION, version=version, actor=author)
