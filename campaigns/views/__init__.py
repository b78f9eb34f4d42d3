"""Pages for leads, suppressions and campaigns (adapters: parse, authorise, call a service)."""
