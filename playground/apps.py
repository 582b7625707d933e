from django.apps import AppConfig


class PlaygroundConfig(AppConfig):
    name = "playground"

    def ready(self) -> None:
        from gateway.shadow import production_answer
        from playground.services.shadow import shadow_on_production_answer

        production_answer.connect(
            shadow_on_production_answer, dispatch_uid="playground-shadow-sampling"
        )
