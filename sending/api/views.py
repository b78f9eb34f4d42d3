from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import api_membership_for_write, api_memberships
from accounts.http import api_user
from reputation.api.serializers import ReputationSerializer
from reputation.selectors import domain_actions, domain_reputation
from sending.api.serializers import (
    ConnectionResultSerializer,
    DnsRecordSerializer,
    DomainCreateSerializer,
    DomainSerializer,
    DomainUpdateSerializer,
    MailboxSerializer,
    MailboxWriteSerializer,
    VerificationSerializer,
)
from sending.models import DkimKey, DomainStatus, Mailbox, SendingDomain
from sending.services.connection import mailbox_test_connection
from sending.services.dns import domain_records
from sending.services.domains import domain_create, domain_retire, domain_sending_change
from sending.services.mailboxes import mailbox_create, mailbox_delete, mailbox_update
from sending.services.permissions import require_role
from sending.services.verification import domain_verify


class DomainViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Sending domains of the workspaces this request may see."""

    serializer_class = DomainSerializer
    queryset = SendingDomain.objects.none()
    lookup_field = "public_id"
    lookup_url_kwarg = "id"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[SendingDomain]:
        workspaces = api_memberships(self.request).values("workspace_id")
        return (
            SendingDomain.objects.filter(workspace_id__in=workspaces)
            .exclude(status=DomainStatus.RETIRED)
            .select_related("workspace")
            .prefetch_related(Prefetch("dkim_keys", queryset=DkimKey.objects.order_by("pk")))
            .order_by("name")
        )

    @extend_schema(request=DomainCreateSerializer, responses={201: DomainSerializer})
    def create(self, request: Request) -> Response:
        """Claim a domain; the response's records are then at dns-records/."""
        data = DomainCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, data.validated_data.get("workspace"))
        domain = domain_create(
            workspace=membership.workspace,
            actor=api_user(request),
            name=data.validated_data["name"],
            sends_through=data.validated_data["sends_through"],
        )
        return Response(
            DomainSerializer(self.get_queryset().get(pk=domain.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=DomainUpdateSerializer, responses=DomainSerializer)
    def partial_update(self, request: Request, id: str) -> Response:
        """Change how the domain sends; its records are checked again at once (the response
        carries the new status and what is still missing)."""
        domain = self.get_object()
        data = DomainUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        domain_sending_change(
            domain=domain,
            actor=api_user(request),
            sends_through=data.validated_data["sends_through"],
        )
        return Response(DomainSerializer(self.get_queryset().get(pk=domain.pk)).data)

    def perform_destroy(self, instance: SendingDomain) -> None:
        domain_retire(domain=instance, actor=api_user(self.request))

    @extend_schema(responses=DnsRecordSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="dns-records", pagination_class=None)
    def dns_records(self, request: Request, id: str) -> Response:
        """The records to publish, as JSON (for how the domain sends)."""
        domain = self.get_object()
        return Response([r.as_dict() for r in domain_records(domain)])

    @extend_schema(responses=ReputationSerializer)
    @action(detail=True, methods=["get"])
    def reputation(self, request: Request, id: str) -> Response:
        """Score, tier, provisional state, window metrics, rehabilitation numbers, history and
        the recent automatic and staff actions."""
        domain = self.get_object()
        data = domain_reputation(domain)
        data["recent_actions"] = domain_actions(domain)
        return Response(ReputationSerializer(data).data)

    @extend_schema(request=None, responses=VerificationSerializer)
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, id: str) -> Response:
        """Check every record now and return the per-record results."""
        verification = domain_verify(domain=self.get_object(), actor=api_user(request))
        return Response(
            {
                "status": verification.domain.status,
                "verified": verification.verified,
                "demo": verification.domain.is_demo,
                "results": verification.results,
            }
        )


class MailboxViewSet(viewsets.ModelViewSet):
    """Mailboxes on the sending domains this request may see. Passwords are write-only."""

    serializer_class = MailboxSerializer
    queryset = Mailbox.objects.none()
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Mailbox]:
        workspaces = api_memberships(self.request).values("workspace_id")
        return (
            Mailbox.objects.filter(domain__workspace_id__in=workspaces)
            .exclude(domain__status=DomainStatus.RETIRED)
            .select_related("domain", "grant")
            .order_by("domain__name", "local_part")
        )

    def _write_data(self, request: Request) -> dict:
        data = MailboxWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return dict(data.validated_data)

    @extend_schema(request=MailboxWriteSerializer, responses={201: MailboxSerializer})
    def create(self, request: Request) -> Response:
        data = self._write_data(request)
        workspaces = api_memberships(request).values("workspace_id")
        domain = (
            SendingDomain.objects.filter(
                workspace_id__in=workspaces, public_id=data.get("domain") or ""
            )
            .exclude(status=DomainStatus.RETIRED)
            .select_related("workspace")
            .first()
        )
        if domain is None:
            raise NotFound("No such sending domain.")
        mailbox = mailbox_create(domain=domain, actor=api_user(request), data=data)
        return Response(MailboxSerializer(mailbox).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MailboxWriteSerializer, responses=MailboxSerializer)
    def partial_update(self, request: Request, pk: str) -> Response:
        mailbox = mailbox_update(
            mailbox=self.get_object(), actor=api_user(request), data=self._write_data(request)
        )
        return Response(MailboxSerializer(mailbox).data)

    def perform_destroy(self, instance: Mailbox) -> None:
        mailbox_delete(mailbox=instance, actor=api_user(self.request))

    @extend_schema(request=None, responses=ConnectionResultSerializer(many=True))
    @action(detail=True, methods=["post"], url_path="test-connection", pagination_class=None)
    def test_connection(self, request: Request, pk: str) -> Response:
        """Log in to the mailbox's SMTP and IMAP servers; each result says why it failed."""
        mailbox = self.get_object()
        require_role(workspace=mailbox.domain.workspace, user=api_user(request))
        results = mailbox_test_connection(mailbox=mailbox)
        return Response([r.as_dict() for r in results])
