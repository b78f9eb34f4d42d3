"""Inbox services: polling mailboxes for replies, what replies do, and working them."""
