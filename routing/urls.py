from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("", views.index, name="index"),
    path("catalog/", views.catalog, name="catalog"),
    path("prices/import/", views.price_import, name="price-import"),
    path("models/<int:model_id>/remap/", views.model_remap, name="model-remap"),
    path("tiers/<str:tier_name>/reorder/", views.tier_reorder, name="tier-reorder"),
    path("tiers/<str:tier_name>/models/", views.tier_model_add, name="tier-model-add"),
    path(
        "tiers/<str:tier_name>/models/<int:model_id>/remove/",
        views.tier_model_remove,
        name="tier-model-remove",
    ),
    path("policies/<int:policy_id>/rules/new/", views.rule_add, name="rule-add"),
    path("policies/<int:policy_id>/reorder/", views.rules_reorder, name="rules-reorder"),
    path("rules/<int:rule_id>/edit/", views.rule_edit, name="rule-edit"),
    path("rules/<int:rule_id>/toggle/", views.rule_toggle, name="rule-toggle"),
    path("rules/<int:rule_id>/delete/", views.rule_delete, name="rule-delete"),
    path("test/", views.route_test, name="route-test"),
]
