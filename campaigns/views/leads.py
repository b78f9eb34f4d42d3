"""Pages: leads."""

from django.urls import URLPattern

pages: list[URLPattern] = []
