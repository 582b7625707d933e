from django.urls import path

from spend import explorer_views

app_name = "requests"

urlpatterns = [
    path("", explorer_views.request_list, name="list"),
    path("<str:request_id>/", explorer_views.request_drawer, name="detail"),
]
