from django.urls import path

from billing.api.views import BillingView, CheckoutView, CreditsView

urlpatterns = [
    path("workspaces/<str:id>/billing/", BillingView.as_view(), name="api-billing"),
    path(
        "workspaces/<str:id>/billing/checkout/", CheckoutView.as_view(), name="api-billing-checkout"
    ),
    path("workspaces/<str:id>/billing/credits/", CreditsView.as_view(), name="api-billing-credits"),
]
