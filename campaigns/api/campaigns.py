"""API: /api/v1/campaigns/, /api/v1/campaigns/{id}/leads/, /api/v1/campaigns/{id}/stats/."""
