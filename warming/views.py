from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.decorators import workspace_view


@workspace_view()
def warming(request: HttpRequest) -> HttpResponse:
    return render(request, "warming/warming.html")
