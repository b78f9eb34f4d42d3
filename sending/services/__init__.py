"""Writes and side effects for sending domains, DKIM keys and mailboxes, one module per concern:
permissions, dns (records and lookups), dkim, status (the domain status machine), verification,
domains (lifecycle), mailboxes and connection (Test connection). Import each module directly."""
