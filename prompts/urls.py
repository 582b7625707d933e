from django.urls import path

from prompts import views

app_name = "prompts"

urlpatterns = [
    path("", views.list, name="list"),
]
