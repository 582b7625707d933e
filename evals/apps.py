from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = "Evaluation"

    def ready(self) -> None:
        from evals.explorer import drawer_section, list_panel
        from evals.provider import Evaluation
        from playground.hooks import evaluation_register
        from spend.explorer_hooks import drawer_section_register, list_panel_register

        evaluation_register(Evaluation())
        list_panel_register(list_panel)
        drawer_section_register(drawer_section)
