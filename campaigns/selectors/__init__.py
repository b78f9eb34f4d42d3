"""Reads for campaigns, leads and suppressions (one module per area)."""
