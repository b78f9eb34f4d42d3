"""Machine-open rules (pure)."""
