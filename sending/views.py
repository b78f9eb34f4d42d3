from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_view


@workspace_view()
def domains(request: HttpRequest) -> HttpResponse:
    return render(request, "sending/domains.html")


@workspace_view()
def mailboxes(request: HttpRequest) -> HttpResponse:
    return render(request, "sending/mailboxes.html")


@workspace_view()
def campaigns(request: HttpRequest) -> HttpResponse:
    return render(request, "sending/campaigns.html")
