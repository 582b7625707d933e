from django.apps import AppConfig


class PlaygroundConfig(AppConfig):
    name = "playground"

    def ready(self) -> None:
        from gateway.batches import batch_finished
        from gateway.shadow import production_answer
        from playground.services.shadow import shadow_on_production_answer
        from playground.waiting import job_batch_settle

        batch_finished.connect(job_batch_settle, dispatch_uid="playground-job-batch-settle")

        production_answer.connect(
            shadow_on_production_answer, dispatch_uid="playground-shadow-sampling"
        )

        from playground.explorer_links import job_links, shadow_links
        from spend.explorer import related_finder_register

        related_finder_register(shadow_links)
        related_finder_register(job_links)
