"""Pages: campaigns."""

from django.urls import URLPattern

pages: list[URLPattern] = []
