"""The workspace's plan, limits and credits, and Stripe Checkout, for integrators.

Open to every plan (also those without API access), so that any workspace can read its plan
and upgrade."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.views import api_membership, api_membership_for_write
from billing import selectors
from billing.api.serializers import (
    BillingSerializer,
    CheckoutResultSerializer,
    CheckoutSerializer,
    CreditEntrySerializer,
)
from billing.models import CreditEntry
from billing.services.subscriptions import checkout_start


class BillingView(generics.GenericAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = BillingSerializer

    @extend_schema(summary="The workspace's plan, payment standing, limits and credit balance")
    def get(self, request: Request, id: str) -> Response:
        workspace = api_membership(request, id).workspace
        entitlements = selectors.entitlements_get(workspace=workspace)
        account = selectors.billing_account_of(workspace)
        usage = selectors.usage_get(workspace=workspace)
        plan = entitlements.plan
        data = {
            "workspace": workspace.public_id,
            "plan": plan.code,
            "standing": entitlements.standing.value,
            "grace_ends": entitlements.grace_ends,
            "note": entitlements.note,
            "subscription_status": account.status if account else "",
            "interval": account.interval if account else "",
            "renews_at": account.current_period_end if account else None,
            "external_sending": entitlements.external_sending,
            "api_access": plan.api_access,
            "domains": {"used": usage["domains"], "limit": plan.domains},
            "mailboxes": {"used": usage["mailboxes"], "limit": plan.mailboxes},
            "seats": {"used": usage["seats"], "limit": plan.seats},
            "credits": selectors.credit_balance_get(workspace=workspace),
        }
        return Response(BillingSerializer(data).data)


class CheckoutView(generics.GenericAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = CheckoutSerializer

    @extend_schema(
        summary="Open a Stripe Checkout session for a plan (Starter only yearly)",
        responses={201: CheckoutResultSerializer},
    )
    def post(self, request: Request, id: str) -> Response:
        data = CheckoutSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = api_membership_for_write(request, id)
        url = checkout_start(
            workspace=membership.workspace,
            actor=membership.user,
            price=data.validated_data["price"],
            success_url=data.validated_data["success_url"],
            cancel_url=data.validated_data["cancel_url"],
        )
        return Response({"url": url}, status=status.HTTP_201_CREATED)


class CreditsView(generics.ListAPIView):
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = CreditEntrySerializer

    @extend_schema(summary="The credit ledger, newest first")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[CreditEntry]:
        workspace = api_membership(self.request, self.kwargs["id"]).workspace
        return selectors.credit_entries_list(workspace=workspace)
