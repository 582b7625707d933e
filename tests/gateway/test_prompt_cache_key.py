"""The `prompt_cache_key` a stored prompt sends upstream, seen over real HTTP: the simulator
echoes the key it received in its Response object, as OpenAI does, and the gateway passes
the upstream answer on."""

from __future__ import annotations

from prompts.caching import version_cache_key
from prompts.models import Prompt, PromptVersion
from prompts.services import prompt_update

TRIAGE = "My invoice is wrong and I was charged twice."


def test_a_stored_prompt_sends_its_versions_key(sdk, team):
    answer = sdk.responses.create(
        prompt={"id": "support-triage", "version": "1", "variables": {"message": TRIAGE}},
    )
    again = sdk.responses.create(
        prompt={"id": "support-triage", "version": "production", "variables": {"message": "x"}},
    )
    version = PromptVersion.objects.select_related("prompt").get(
        prompt__team=team, prompt__slug="support-triage", number=1
    )
    assert answer.prompt_cache_key == version_cache_key(version)
    assert again.prompt_cache_key == answer.prompt_cache_key  # the same version, other input
    assert answer.prompt_cache_key.startswith("sb-")


def test_the_prompts_override_is_sent(sdk, team):
    prompt = Prompt.objects.get(team=team, slug="meeting-summary")
    prompt_update(prompt=prompt, actor=None, cache_key="summaries:shared")
    answer = sdk.responses.create(
        prompt={"id": "meeting-summary", "variables": {"transcript": "We met. We agreed."}},
    )
    assert answer.prompt_cache_key == "summaries:shared"


def test_a_clients_own_key_wins(sdk):
    answer = sdk.responses.create(
        prompt={"id": "support-triage", "variables": {"message": TRIAGE}},
        prompt_cache_key="client-chosen",
    )
    assert answer.prompt_cache_key == "client-chosen"
