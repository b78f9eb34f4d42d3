"""The public unsubscribe page and its one-click endpoint (RFC 8058): no login."""
