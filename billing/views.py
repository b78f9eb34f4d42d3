from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_view


@workspace_view()
def billing(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/billing.html")
