from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import AsyncRequestFactory, RequestFactory
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from accounts.authentication import ApiKeyUser
from accounts.models import ApiKey, Role, Team
from accounts.permissions import (
    IsTeamMember,
    KeysReadOnly,
    PeopleOnly,
    avisible_team_ids,
    has_role,
    require_role,
    role_required,
    scope_to_teams,
    team_for_request,
    team_object_or_404,
    visible_team_ids,
)
from core.errors import BadRequest, NotFound
from tests.conftest import _user

pytestmark = pytest.mark.django_db


def as_user(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def as_key(raw_key: str):
    from accounts.keys import api_key_resolve_sync

    key = api_key_resolve_sync(raw_key)
    request = RequestFactory().get("/")
    request.user = ApiKeyUser(api_key=key)
    request.api_key = key
    return request


@pytest.fixture
def finance(team: Team):
    return _user("fiona", team, Role.FINANCE)


@pytest.fixture
def admin_user(db):
    return _user("ada", None, Role.ADMIN)


def test_a_member_sees_their_teams_only(alice, team, other_team):
    assert visible_team_ids(as_user(alice)) == {team.pk}


def test_an_admin_sees_every_team(admin_user, team, other_team):
    assert visible_team_ids(as_user(admin_user)) == {team.pk, other_team.pk}


def test_a_key_sees_its_team_only(api_key, team, other_team):
    assert visible_team_ids(as_key(api_key)) == {team.pk}


def test_anonymous_sees_nothing(team):
    assert visible_team_ids(as_user(AnonymousUser())) == frozenset()


@pytest.mark.django_db(transaction=True)
async def test_async_views_get_the_same_answer(alice, team, other_team):

    request = AsyncRequestFactory().get("/")

    async def auser():
        return alice

    request.auser = auser
    assert await avisible_team_ids(request) == {team.pk}


def test_team_for_request_names_the_keys_team(api_key, team, other_team):
    assert team_for_request(as_key(api_key)) == team
    with pytest.raises(NotFound):
        team_for_request(as_key(api_key), slug=other_team.slug)


def test_team_for_request_refuses_a_team_the_user_is_not_in(alice, team, other_team):
    assert team_for_request(as_user(alice)) == team
    assert team_for_request(as_user(alice), slug="team-a") == team
    with pytest.raises(NotFound):
        team_for_request(as_user(alice), slug=other_team.slug)


def test_team_for_request_asks_which_team_when_there_are_several(alice, team, other_team):
    from accounts.models import Membership

    Membership.objects.create(user=alice, team=other_team)
    with pytest.raises(BadRequest):
        team_for_request(as_user(alice))
    assert team_for_request(as_user(alice), slug="team-b") == other_team


def test_another_teams_object_is_not_found(alice, charlie, team, other_team, api_key):
    key = ApiKey.objects.get(team=team)
    assert team_object_or_404(ApiKey.objects.all(), as_user(alice), pk=key.pk) == key
    with pytest.raises(Http404):
        team_object_or_404(ApiKey.objects.all(), as_user(charlie), pk=key.pk)
    assert list(scope_to_teams(ApiKey.objects.all(), as_user(charlie))) == []


def test_roles_are_checked_with_admins_holding_all(alice, bob, finance, admin_user):
    assert has_role(alice, Role.PROMPT_EDITOR)
    assert not has_role(bob, Role.PROMPT_EDITOR)
    assert has_role(finance, Role.FINANCE)
    assert has_role(admin_user, Role.FINANCE)
    assert not has_role(AnonymousUser(), Role.TEAM_MEMBER)


def test_role_lookups_are_cached_per_user_object(alice, django_assert_num_queries):
    has_role(alice, Role.PROMPT_EDITOR)
    with django_assert_num_queries(0):
        has_role(alice, Role.FINANCE)


def test_roles_match_the_groups_created_by_the_migration():
    assert set(Group.objects.values_list("name", flat=True)) >= set(Role.values)


# --- view decorators --------------------------------------------------------------------------


@require_role(Role.FINANCE)
def budgets_page(request):
    return HttpResponse("ok")


@require_role(Role.FINANCE)
async def async_budgets_page(request):
    return HttpResponse("ok")


def test_require_role_lets_the_role_in(finance):
    assert budgets_page(as_user(finance)).status_code == 200


def test_require_role_refuses_a_teammate_without_it(bob):
    with pytest.raises(PermissionDenied):
        budgets_page(as_user(bob))


def test_require_role_sends_anonymous_users_to_login():
    response = budgets_page(as_user(AnonymousUser()))
    assert response.status_code == 302
    assert response.url.startswith("/login/")


@pytest.mark.django_db(transaction=True)
async def test_require_role_works_on_async_views(finance, bob):
    for user, allowed in ((finance, True), (bob, False)):
        request = AsyncRequestFactory().get("/")

        async def auser(user=user):
            return user

        request.auser = auser
        if allowed:
            assert (await async_budgets_page(request)).status_code == 200
        else:
            with pytest.raises(PermissionDenied):
                await async_budgets_page(request)


# --- DRF permission classes ---------------------------------------------------------------------


def drf_status(permission, *, user=None, key: str | None = None, method: str = "get") -> int:
    class View(APIView):
        permission_classes = [permission]

        def get(self, request):
            return HttpResponse("ok")

        post = get

    request = getattr(APIRequestFactory(), method)("/")
    if key is not None:
        from accounts.keys import api_key_resolve_sync

        api_key = api_key_resolve_sync(key)
        force_authenticate(request, user=ApiKeyUser(api_key=api_key), token=api_key)
    elif user is not None:
        force_authenticate(request, user=user)
    return View.as_view()(request).status_code


def test_is_team_member_admits_people_and_keys_only(alice, api_key):
    assert drf_status(IsTeamMember, user=alice) == 200
    assert drf_status(IsTeamMember, key=api_key) == 200
    assert drf_status(IsTeamMember) in (401, 403)


def test_people_only_refuses_keys(alice, api_key):
    assert drf_status(PeopleOnly, user=alice) == 200
    assert drf_status(PeopleOnly, key=api_key) == 403


def test_keys_read_only_lets_keys_read_but_not_write(alice, api_key):
    assert drf_status(KeysReadOnly, key=api_key) == 200
    assert drf_status(KeysReadOnly, key=api_key, method="post") == 403
    assert drf_status(KeysReadOnly, user=alice, method="post") == 200


def test_role_required_checks_the_role_and_refuses_keys(finance, bob, api_key):
    permission = role_required(Role.FINANCE)
    assert drf_status(permission, user=finance) == 200
    assert drf_status(permission, user=bob) == 403
    assert drf_status(permission, key=api_key) == 403
    reading = role_required(Role.FINANCE, allow_keys_to_read=True)
    assert drf_status(reading, key=api_key) == 200
    assert drf_status(reading, key=api_key, method="post") == 403
