"""Reputation policy: intake and processing of MTA records, events, automatic actions,
blocklists and bad apples. Above sending's services; import each submodule directly."""
