"""Hot-path figures for prompts: validate + render a version, and the cached resolve.

    python bench/prompt_render.py [--n 20000]

Rendering needs no database (an unsaved PromptVersion); the resolve part runs on an
in-memory SQLite database with the LocMem cache, so it measures our code, not a network.
Prints microseconds per call; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

# the project instead of bench/, whose requests.py shadows the package
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ["DATABASE_URL"] = "sqlite://:memory:"
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402  (after the path and environment are set)

django.setup()

from django.core.management import call_command  # noqa: E402

from prompts.models import PromptVersion  # noqa: E402
from prompts.rendering import render_version, validate_version_templates  # noqa: E402
from prompts.seed import SAMPLE_PROMPTS  # noqa: E402


def per_call(fn, n: int) -> float:
    fn()  # warm: compile and cache the templates
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    triage = next(s for s in SAMPLE_PROMPTS if s["slug"] == "support-triage")
    version = PromptVersion(
        number=1,
        system_template=triage["system_template"],
        user_template=triage["user_template"],
        few_shot=[],
        variables=triage["variables"],
    )
    variables = {"message": "My invoice is wrong. " * 20, "channel": "chat"}

    def render() -> object:
        return render_version(version, variables)

    def validate() -> object:
        return validate_version_templates(
            system_template=version.system_template,
            user_template=version.user_template,
            few_shot=[],
            variables=version.variables,
        )

    print(f"render_version (support-triage): {per_call(render, n):8.1f} µs/call")
    print(f"validate_version_templates:      {per_call(validate, n // 10):8.1f} µs/call (on save)")

    call_command("migrate", verbosity=0)
    from accounts.models import Team
    from prompts.seed import seed_prompts
    from prompts.selectors import prompt_version_resolve, prompt_version_resolve_sync

    team = Team.objects.create(slug="demo", name="Demo")
    seed_prompts(team=team, author=None)
    resolve = lambda: prompt_version_resolve_sync(team_id=team.id, slug="support-triage")  # noqa: E731
    print(f"resolve, cached (sync):          {per_call(resolve, n):8.1f} µs/call")

    async def resolve_async_many() -> float:
        await prompt_version_resolve(team_id=team.id, slug="support-triage")
        start = time.perf_counter()
        for _ in range(n):
            await prompt_version_resolve(team_id=team.id, slug="support-triage")
        return (time.perf_counter() - start) / n * 1e6

    print(f"resolve, cached (async):         {asyncio.run(resolve_async_many()):8.1f} µs/call")


if __name__ == "__main__":
    main()
