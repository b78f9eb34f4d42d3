"""Tracking services: tokens, the tracked HTML of a campaign message, hits, custom domains."""
