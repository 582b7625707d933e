from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"

    def ready(self) -> None:
        from core.hot import hot_watch
        from prompts.models import Label, Prompt, PromptVersion

        hot_watch(Prompt, PromptVersion, Label)
