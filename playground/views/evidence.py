"""Recommendations and shadow review pages: the evidence that a cheaper tier will do."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import user_teams
from core.errors import AppError
from playground import hooks, selectors, services
from playground.models import Verdict
from playground.views.common import flash_error


@login_required
def recommendations(request: HttpRequest) -> HttpResponse:
    team = selectors.team_for_user(user=request.user, slug=request.GET.get("team"))
    rows = []
    for prompt in team.prompts.all().order_by("slug"):
        recs = selectors.prompt_recommendations(prompt=prompt)
        rows.append(
            {
                "prompt": prompt,
                "recommendations": recs,
                "routed_to": selectors.prompt_routed_to(prompt=prompt),
                "agreement": hooks.evaluation().agreement(prompt=prompt),
            }
        )
    return render(
        request,
        "playground/recommendations.html",
        {
            "team": team,
            "teams": user_teams(user=request.user),
            "rows": rows,
            "can_edit": selectors.user_can_edit(user=request.user, team=team),
        },
    )


@login_required
@require_POST
def recommendation_apply(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = selectors.prompt_get(user=request.user, pk=prompt_id)
    try:
        rule = services.recommendation_apply(
            prompt=prompt, cheap_tier=request.POST.get("tier", ""), actor=request.user
        )
    except AppError as exc:
        flash_error(request, exc)
    else:
        messages.success(request, f"Rule “{rule.name}” added at the top of the active policy.")
    return redirect(f"{reverse('playground:recommendations')}?team={prompt.team.slug}")


@login_required
def shadow(request: HttpRequest) -> HttpResponse:
    team = selectors.team_for_user(user=request.user, slug=request.GET.get("team"))
    prompt = None
    if (prompt_id := request.GET.get("prompt")) and prompt_id.isdigit():
        prompt = selectors.prompt_get(user=request.user, pk=int(prompt_id))
    return render(
        request,
        "playground/shadow.html",
        {
            "team": team,
            "teams": user_teams(user=request.user),
            "prompts": [
                (p, f"{p.shadow_sample_rate * 100:.1f}".removesuffix(".0"))
                for p in team.prompts.all().order_by("slug")
            ],
            "prompt": prompt,
            "pairs": selectors.shadow_pairs(team=team, prompt=prompt),
            "can_edit": selectors.user_can_edit(user=request.user, team=team),
        },
    )


@login_required
@require_POST
def shadow_rate(request: HttpRequest, prompt_id: int) -> HttpResponse:
    prompt = selectors.prompt_get(user=request.user, pk=prompt_id)
    try:
        rate = Decimal(request.POST.get("rate", "0")) / 100
        services.shadow_rate_set(prompt=prompt, rate=rate, actor=request.user)
    except InvalidOperation:
        messages.error(request, "The sample rate is a percentage between 0 and 100.")
    except AppError as exc:
        flash_error(request, exc)
    else:
        messages.success(request, f"Shadow sampling for {prompt.slug}: {rate:.1%}.")
    return redirect(f"{reverse('playground:shadow')}?team={prompt.team.slug}")


@login_required
@require_POST
def shadow_review(request: HttpRequest, pk: int) -> HttpResponse:
    from playground.models import ShadowPair

    pair = ShadowPair.objects.filter(pk=pk, team__in=user_teams(user=request.user)).first()
    if pair is None:
        raise Http404("No such pair.")
    choice = request.POST.get("choice", "")
    verdict, winner = (
        (Verdict.WINNER, choice) if choice in ("production", "shadow") else (choice, "")
    )
    try:
        services.shadow_pair_review(
            pair=pair, reviewer=request.user, verdict=verdict, winner=winner
        )
    except AppError as exc:
        messages.error(request, exc.message)
    return redirect(f"{reverse('playground:shadow')}?team={pair.team.slug}")
