"""Pages: suppressions."""

from django.urls import URLPattern

pages: list[URLPattern] = []
