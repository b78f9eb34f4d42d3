from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api.serializers import (
    MemberSerializer,
    MeSerializer,
    WorkspaceSerializer,
    WorkspaceUpdateSerializer,
)
from accounts.http import api_user
from accounts.models import ApiToken, Membership, Role, Workspace


def api_memberships(request: Request) -> QuerySet[Membership]:
    """Memberships the request may use: all of the user's, or the token's one workspace."""
    memberships = selectors.membership_list_for_user(user=api_user(request))
    if isinstance(request.auth, ApiToken):
        memberships = memberships.filter(workspace_id=request.auth.workspace_id)
    return memberships


def api_membership(request: Request, public_id: str) -> Membership:
    """The membership for a workspace in the URL; 404 when the request may not see it."""
    membership = api_memberships(request).filter(workspace__public_id=public_id).first()
    if membership is None:
        raise NotFound("No such workspace.")
    return membership


class MeView(generics.GenericAPIView):
    serializer_class = MeSerializer

    @extend_schema(summary="The authenticated user (and the token in use, if any)")
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response(MeSerializer(request.user, context={"token": token}).data)


class WorkspaceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Workspaces you belong to (a token sees only its own workspace)."""

    serializer_class = WorkspaceSerializer
    queryset = Workspace.objects.none()  # the model, for the schema; get_queryset scopes it
    lookup_field = "public_id"

    def get_queryset(self):
        workspaces = selectors.workspace_list(user=api_user(self.request))
        if isinstance(self.request.auth, ApiToken):
            workspaces = workspaces.filter(pk=self.request.auth.workspace_id)
        return workspaces

    @extend_schema(request=WorkspaceUpdateSerializer, responses=WorkspaceSerializer)
    def partial_update(self, request: Request, public_id: str) -> Response:
        """Rename the workspace (owners and admins)."""
        membership = api_membership(request, public_id)
        if not membership.has_role(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can rename the workspace.")
        data = WorkspaceUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.workspace_rename(
            workspace=membership.workspace,
            actor=api_user(request),
            name=data.validated_data["name"],
        )
        return Response(self.get_serializer(self.get_object()).data)

    @extend_schema(responses=MemberSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request: Request, public_id: str) -> Response:
        """Members of the workspace and their roles."""
        membership = api_membership(request, public_id)
        page = self.paginate_queryset(selectors.membership_list(workspace=membership.workspace))
        return self.get_paginated_response(MemberSerializer(page, many=True).data)


def api_membership_for_write(request: Request, requested: str | None) -> Membership:
    """The workspace a create request targets: the token's one, or (for a browser session) the
    `workspace` given, which may be left out by someone in a single workspace."""
    if isinstance(request.auth, ApiToken):
        membership = api_memberships(request).first()
        if membership is None or (requested and requested != membership.workspace.public_id):
            raise NotFound("This token is bound to another workspace.")
        return membership
    if requested:
        return api_membership(request, requested)
    memberships = list(api_memberships(request)[:2])
    if len(memberships) != 1:
        raise ValidationError({"workspace": ["Give the workspace's public id."]})
    return memberships[0]
