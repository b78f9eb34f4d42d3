"""Tracking models."""
