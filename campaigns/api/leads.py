"""API: /api/v1/leads/, /api/v1/suppressions/ (and lists, imports)."""
