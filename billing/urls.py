from django.urls import path

from billing import views

workspace_urlpatterns = [
    path("billing/", views.billing, name="billing"),
    path("billing/checkout/", views.checkout, name="billing_checkout"),
    path("billing/portal/", views.portal, name="billing_portal"),
    path("billing/done/", views.done, name="billing_done"),
]

urlpatterns = [
    path("start/<str:price>/", views.start, name="billing_start"),
]
