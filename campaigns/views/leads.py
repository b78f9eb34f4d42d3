"""Leads, lists, CSV imports and suppressions."""
