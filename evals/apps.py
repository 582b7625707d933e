from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evaluation"

    def ready(self) -> None:
        from evals.provider import Evaluation
        from playground.hooks import evaluation_register

        evaluation_register(Evaluation())
