"""API: the suppression lists of the workspaces a request may see (`/api/v1/suppressions/`).

One resource for both kinds of entry: an address (`address_<n>`) or a blocked domain
(`domain_<n>`). The platform's own entries are not listed here."""

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from campaigns.selectors.suppressions import suppression_entries
from campaigns.services.suppressions import (
    suppressed_domain_block,
    suppressed_domain_unblock,
    suppression_add,
    suppression_remove,
)
from sending.models import SuppressedDomain, Suppression

KINDS = ("address", "domain")


class SuppressionSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`address_<n>` or `domain_<n>`.")
    kind = serializers.ChoiceField(choices=KINDS)
    workspace = serializers.CharField(help_text="The workspace's public id.")
    value = serializers.CharField(help_text="The address, or the blocked domain (ASCII form).")
    reason = serializers.ChoiceField(
        choices=Suppression.Reason.choices,
        help_text="Why an address is listed; a blocked domain is always `manual`.",
    )
    note = serializers.CharField(
        allow_blank=True, help_text="Where an address came from, or why a domain is blocked."
    )
    created_at = serializers.DateTimeField()


class SuppressionCreateSerializer(serializers.Serializer):
    address = serializers.CharField(
        required=False, max_length=320, help_text="An address to suppress (or give `domain`)."
    )
    domain = serializers.CharField(
        required=False,
        max_length=400,
        help_text="A whole domain to block: `competitor.com` (`@competitor.com` and a web "
        "address work too).",
    )
    reason = serializers.ChoiceField(
        choices=Suppression.Reason.choices,
        default=Suppression.Reason.MANUAL,
        help_text="For an address: why it is suppressed (default `manual`). A domain takes "
        "only `manual`.",
    )
    note = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    workspace = serializers.CharField(
        required=False, help_text="The workspace's public id (a token's own when left out)."
    )

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        has_address, has_domain = bool(data.get("address")), bool(data.get("domain"))
        if has_address == has_domain:
            raise serializers.ValidationError(
                {"address": ["Give either `address` or `domain` (one of them)."]}
            )
        if has_domain and data["reason"] != Suppression.Reason.MANUAL:
            raise serializers.ValidationError(
                {"reason": ["A blocked domain takes only `manual`; say why in `note`."]}
            )
        return data


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{row['kind']}_{row['ident']}",
        "kind": row["kind"],
        "workspace": row["ws"],
        "value": row["value"],
        "reason": row["reason_code"],
        "note": row["note"],
        "created_at": row["added_at"],
    }


def _split_id(entry_id: str) -> tuple[str, int]:
    kind, _, number = entry_id.partition("_")
    if kind not in KINDS or not number.isdigit() or len(number) > 18:
        raise NotFound("No such suppression.")
    return kind, int(number)


LIST_PARAMETERS = [
    OpenApiParameter("kind", OpenApiTypes.STR, enum=list(KINDS), description="Only this kind."),
    OpenApiParameter("search", OpenApiTypes.STR, description="Part of the address or domain."),
]
CONFIRM = OpenApiParameter(
    "confirm",
    OpenApiTypes.BOOL,
    description="Required (`true`) to remove an unsubscribe or a complaint: mailing that person "
    "again risks spam complaints.",
)


@extend_schema_view(
    list=extend_schema(parameters=LIST_PARAMETERS, summary="Your suppressed addresses and domains")
)
class SuppressionViewSet(viewsets.GenericViewSet):
    """Addresses and whole domains your campaigns never email. Unsubscribes, complaints and
    hard bounces are added on their own; removing an entry needs an owner or admin."""

    serializer_class = SuppressionSerializer
    queryset = Suppression.objects.none()

    def _workspace_ids(self) -> QuerySet:
        return api_memberships(self.request).values("workspace_id")

    def list(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "")
        if kind and kind not in KINDS:
            raise serializers.ValidationError({"kind": ["Use `address` or `domain`."]})
        rows = suppression_entries(
            workspace_ids=self._workspace_ids(),
            kind=kind,
            search=request.query_params.get("search", "")[:320],
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([_entry(row) for row in page or []])

    def _row(self, entry_id: str) -> Suppression | SuppressedDomain:
        kind, pk = _split_id(entry_id)
        model = Suppression if kind == "address" else SuppressedDomain
        row = (
            model.objects.filter(pk=pk, workspace_id__in=self._workspace_ids())
            .select_related("workspace")
            .first()
        )
        if row is None:
            raise NotFound("No such suppression.")
        return row

    def _one(self, row: Suppression | SuppressedDomain) -> dict[str, Any]:
        workspace = row.workspace.public_id if row.workspace is not None else ""
        is_address = isinstance(row, Suppression)
        return {
            "id": f"{'address' if is_address else 'domain'}_{row.pk}",
            "kind": "address" if is_address else "domain",
            "workspace": workspace,
            "value": row.address if isinstance(row, Suppression) else row.domain,
            "reason": row.reason if isinstance(row, Suppression) else Suppression.Reason.MANUAL,
            "note": row.source if isinstance(row, Suppression) else row.reason,
            "created_at": row.created_at,
        }

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(SuppressionSerializer(self._one(self._row(pk))).data)

    @extend_schema(
        request=SuppressionCreateSerializer,
        responses={201: SuppressionSerializer, 200: SuppressionSerializer},
        description="Add an address or block a domain. 201 when added; 200 with the existing "
        "entry when it was already there. Waiting campaign steps to it stop at once.",
    )
    def create(self, request: Request) -> Response:
        data = SuppressionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        membership = api_membership_for_write(request, values.get("workspace"))
        actor = api_user(request)
        if values.get("address"):
            added = suppression_add(
                workspace=membership.workspace,
                actor=actor,
                address=values["address"],
                reason=values["reason"],
                source=values["note"],
            )
        else:
            added = suppressed_domain_block(
                workspace=membership.workspace,
                actor=actor,
                domain=values["domain"],
                reason=values["note"],
            )
        code = status.HTTP_201_CREATED if added.created else status.HTTP_200_OK
        return Response(SuppressionSerializer(self._one(self._row_of(added.row))).data, code)

    def _row_of(self, row: Suppression | SuppressedDomain) -> Suppression | SuppressedDomain:
        kind = "address" if isinstance(row, Suppression) else "domain"
        return self._row(f"{kind}_{row.pk}")

    @extend_schema(parameters=[CONFIRM], responses={204: None})
    def destroy(self, request: Request, pk: str) -> Response:
        row = self._row(pk)
        actor = api_user(request)
        if isinstance(row, Suppression):
            confirmed = request.query_params.get("confirm", "").lower() in ("true", "1", "yes")
            suppression_remove(suppression=row, actor=actor, confirmed=confirmed)
        else:
            suppressed_domain_unblock(suppressed_domain=row, actor=actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


def routes_register(router: SimpleRouter) -> None:
    """Add this area's viewsets to the API router."""
    router.register("suppressions", SuppressionViewSet, basename="suppression")
