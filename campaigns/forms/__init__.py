"""Forms for campaign, lead and suppression pages (one module per area)."""
