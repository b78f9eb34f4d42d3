"""The public unsubscribe page and its one-click endpoint (RFC 8058): no login, no confirmation
step for the POST a mail client sends."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.services.unsubscribe import campaign_lead_from_token, lead_unsubscribe
from config.errors import ApplicationError


# A mail client's one-click POST carries no CSRF token; the signed link is the authority.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        if request.method == "POST":
            one_click = request.POST.get("List-Unsubscribe") == "One-Click"
            row = lead_unsubscribe(token=token, how="one-click" if one_click else "page")
            done = True
        else:
            row = campaign_lead_from_token(token=token)
            done = row.lead.status == "unsubscribed"
    except ApplicationError as error:
        return render(
            request, "campaigns/unsubscribe.html", {"error": str(error)}, status=error.status
        )
    return render(
        request,
        "campaigns/unsubscribe.html",
        {"done": done, "address": row.lead.email, "token": token},
    )
