from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def list(request):
    return render(request, "core/coming_soon.html", {"title": "Prompts"})
