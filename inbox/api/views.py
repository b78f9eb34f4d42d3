"""API: the unified inbox (`/api/v1/replies/`) and its labels (`/api/v1/reply-labels/`).

A reply is addressed by its public id (`rpl_...`). `PATCH` sets its labels (the whole set, by
label id) and its read state; `POST /replies/{id}/send/` answers it in-thread from the mailbox
it arrived in. Another workspace's reply or label answers 404."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from campaigns.models import Campaign
from inbox.api.serializers import (
    ReplyLabelSerializer,
    ReplyLabelWriteSerializer,
    ReplyPatchSerializer,
    ReplySendSerializer,
    ReplySerializer,
    SentAnswerSerializer,
)
from inbox.models import Reply, ReplyKind, ReplyLabel
from inbox.selectors import reply_get, reply_list
from inbox.services.inbox import (
    reply_label_create,
    reply_label_delete,
    reply_label_list_of,
    reply_label_rename,
    reply_label_set,
    reply_labels_ensure,
    reply_mark_read,
    reply_mark_unread,
    reply_send,
)
from sending.models import Mailbox

LIST_PARAMETERS = [
    OpenApiParameter("campaign", OpenApiTypes.STR, description="A campaign's public id."),
    OpenApiParameter("mailbox", OpenApiTypes.INT, description="A mailbox's id."),
    OpenApiParameter("label", OpenApiTypes.INT, description="A label's id."),
    OpenApiParameter(
        "kind", OpenApiTypes.STR, enum=list(ReplyKind.values), description="Only this kind."
    ),
    OpenApiParameter("unread", OpenApiTypes.BOOL, description="`true`: only unread replies."),
]


def _int_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name, "")
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise serializers.ValidationError({name: ["Give a whole number (an id)."]})
    return int(value)


@extend_schema_view(
    list=extend_schema(parameters=LIST_PARAMETERS, summary="Replies across mailboxes"),
    retrieve=extend_schema(summary="One reply"),
)
class ReplyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Replies to what your campaigns sent, from every mailbox, newest first."""

    serializer_class = ReplySerializer
    queryset = Reply.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _workspace_ids(self) -> QuerySet:
        return api_memberships(self.request).values("workspace_id")

    def get_queryset(self) -> QuerySet[Reply]:
        request = self.request
        workspace_ids = self._workspace_ids()
        filters: dict[str, Any] = {}
        if self.action == "list":
            params = request.query_params
            kind = params.get("kind", "")
            if kind and kind not in ReplyKind.values:
                raise serializers.ValidationError(
                    {"kind": [f"Use one of: {', '.join(ReplyKind.values)}."]}
                )
            filters["kind"] = kind
            filters["unread_only"] = params.get("unread", "").lower() in ("true", "1", "yes")
            if params.get("campaign"):
                filters["campaign"] = Campaign.objects.filter(
                    workspace_id__in=workspace_ids, public_id=params["campaign"][:40]
                ).first()
                if filters["campaign"] is None:
                    raise serializers.ValidationError({"campaign": ["No such campaign."]})
            mailbox_id = _int_param(request, "mailbox")
            if mailbox_id is not None:
                filters["mailbox"] = Mailbox.objects.filter(
                    domain__workspace_id__in=workspace_ids, pk=mailbox_id
                ).first()
                if filters["mailbox"] is None:
                    raise serializers.ValidationError({"mailbox": ["No such mailbox."]})
            label_id = _int_param(request, "label")
            if label_id is not None:
                filters["label"] = ReplyLabel.objects.filter(
                    workspace_id__in=workspace_ids, pk=label_id
                ).first()
                if filters["label"] is None:
                    raise serializers.ValidationError({"label": ["No such label."]})
        return reply_list(workspace_ids=workspace_ids, **filters)

    def get_object(self) -> Reply:
        reply = reply_get(
            public_id=str(self.kwargs["pk"])[:40], workspace_ids=self._workspace_ids()
        )
        if reply is None:
            raise NotFound("No such reply.")
        return reply

    @extend_schema(request=ReplyPatchSerializer, responses=ReplySerializer, summary="Label, read")
    def partial_update(self, request: Request, pk: str) -> Response:
        reply = self.get_object()
        data = ReplyPatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if "labels" in values:
            wanted_ids = set(values["labels"])
            labels = {
                lb.pk: lb
                for lb in reply_labels_ensure(workspace=reply.workspace)
                if lb.pk in wanted_ids
            }
            unknown = wanted_ids - set(labels)
            if unknown:
                raise serializers.ValidationError(
                    {"labels": [f"No such label: {', '.join(map(str, sorted(unknown)))}."]}
                )
            current = {lb.pk: lb for lb in reply_label_list_of(reply=reply)}
            reply_label_set(
                reply=reply,
                actor=api_user(request),
                add=[lb for pk_, lb in labels.items() if pk_ not in current],
                remove=[lb for pk_, lb in current.items() if pk_ not in labels],
            )
        if "read" in values:
            if values["read"]:
                reply_mark_read(reply=reply)
            else:
                reply_mark_unread(reply=reply)
        return Response(ReplySerializer(self.get_object()).data)

    @extend_schema(
        request=ReplySendSerializer,
        responses={201: SentAnswerSerializer},
        summary="Answer in-thread",
        description="Send an answer from the mailbox the reply arrived in, in its thread "
        "(In-Reply-To and References). Refused (400) when that mailbox is paused or deleted, "
        "its domain may not send, or the reply is a delivery failure or an unsubscribe request.",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def send(self, request: Request, pk: str) -> Response:
        reply = self.get_object()
        data = ReplySendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = reply_send(reply=reply, actor=api_user(request), body=data.validated_data["body"])
        return Response(SentAnswerSerializer(message).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Reply labels"),
    create=extend_schema(
        request=ReplyLabelWriteSerializer,
        responses={201: ReplyLabelSerializer},
        summary="Add a label",
    ),
    partial_update=extend_schema(
        request=ReplyLabelWriteSerializer, responses=ReplyLabelSerializer, summary="Rename"
    ),
)
class ReplyLabelViewSet(viewsets.GenericViewSet):
    """The labels of your workspaces: five built-in ones (`system` set; "interested" counts as
    a positive reply) and your own, unique by name in a workspace."""

    serializer_class = ReplyLabelSerializer
    queryset = ReplyLabel.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def _label(self, pk: str) -> ReplyLabel:
        workspace_ids = api_memberships(self.request).values("workspace_id")
        label = (
            ReplyLabel.objects.filter(workspace_id__in=workspace_ids, pk=pk if pk.isdigit() else 0)
            .select_related("workspace")
            .first()
        )
        if label is None:
            raise NotFound("No such label.")
        return label

    def list(self, request: Request) -> Response:
        labels: list[ReplyLabel] = []
        for membership in api_memberships(request).select_related("workspace"):
            for label in reply_labels_ensure(workspace=membership.workspace):
                label.workspace = membership.workspace
                labels.append(label)
        page = self.paginate_queryset(labels)
        return self.get_paginated_response(ReplyLabelSerializer(page or [], many=True).data)

    def create(self, request: Request) -> Response:
        data = ReplyLabelWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        label = reply_label_create(
            workspace=membership.workspace,
            actor=api_user(request),
            name=data.validated_data["name"],
        )
        return Response(ReplyLabelSerializer(label).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, pk: str) -> Response:
        label = self._label(pk)
        data = ReplyLabelWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label = reply_label_rename(
            label=label, actor=api_user(request), name=data.validated_data["name"]
        )
        return Response(ReplyLabelSerializer(label).data)

    @extend_schema(responses={204: None}, summary="Delete one of your own labels")
    def destroy(self, request: Request, pk: str) -> Response:
        reply_label_delete(label=self._label(pk), actor=api_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def routes_register(router: SimpleRouter) -> None:
    """Add this area's viewsets to the API router."""
    router.register("replies", ReplyViewSet, basename="reply")
    router.register("reply-labels", ReplyLabelViewSet, basename="reply-label")
