from __future__ import annotations

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    """Registered so that `manage.py run_simulator` is found; the simulator has no models."""

    name = "simulator"
    verbose_name = "Simulator"
