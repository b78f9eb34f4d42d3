"""Reply classification rules (pure)."""
