"""What the engagement agent does inside one mailbox over IMAP (no Django): find a warm-up
message by its tag in the inbox, the spam folder or the archive, move it, flag it, read it.

Folders are recognised by their special-use attributes (RFC 6154: \\Junk, \\Archive) first and
by the names providers use otherwise (Gmail's "[Gmail]/Spam", Outlook's "Junk Email", ...).
"""

import contextlib
import imaplib
from collections.abc import Iterable
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from warming.content import WARMUP_HEADER

INBOX = "INBOX"
JUNK_NAMES = ("junk", "spam", "junk email", "junk e-mail", "bulk mail", "[gmail]/spam")
ARCHIVE_NAMES = ("archive", "archives", "[gmail]/all mail")
ARCHIVE_CREATED = "Archive"
IMAP_ERRORS = (OSError, IMAPClientError, imaplib.IMAP4.error)


class ImapFailure(Exception):
    """An IMAP command failed after the login (the connection dropped, a folder vanished)."""


@dataclass(frozen=True)
class Found:
    folder: str
    uid: int
    kind: str  # inbox | junk | archive


@dataclass(frozen=True)
class Folders:
    inbox: str
    junk: tuple[str, ...]
    archive: str | None


def _name(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def folders_classify(listing: Iterable[tuple[tuple[bytes, ...], object, object]]) -> Folders:
    """The inbox, the spam folders and the archive among a LIST answer."""
    junk: list[str] = []
    archive_by_flag: str | None = None
    archive_by_name: str | None = None
    for flags, _delimiter, raw_name in listing:
        name = _name(raw_name)
        lowered = {_name(flag).lower() for flag in flags}
        if "\\noselect" in lowered:
            continue
        if "\\junk" in lowered or name.lower() in JUNK_NAMES or name.lower().endswith("/spam"):
            junk.append(name)
        elif "\\archive" in lowered:
            archive_by_flag = archive_by_flag or name
        elif name.lower() in ARCHIVE_NAMES and archive_by_name is None:
            archive_by_name = name
    return Folders(INBOX, tuple(junk), archive_by_flag or archive_by_name)


class WarmupMailbox:
    """One logged-in IMAP session on a recipient's mailbox."""

    def __init__(self, client: IMAPClient) -> None:
        self.client = client
        self._folders: Folders | None = None

    def folders(self) -> Folders:
        if self._folders is None:
            try:
                self._folders = folders_classify(self.client.list_folders())
            except IMAP_ERRORS as error:
                raise ImapFailure(f"the folder list could not be read: {error}") from error
        return self._folders

    def find(self, code: str) -> Found | None:
        """Where the message tagged `code` is now: the inbox first, then spam, then the archive
        (where an earlier pass already filed it)."""
        folders = self.folders()
        places = [(folders.inbox, "inbox"), *((name, "junk") for name in folders.junk)]
        if folders.archive:
            places.append((folders.archive, "archive"))
        for folder, kind in places:
            uids = self._search(folder, code)
            if uids:
                return Found(folder, max(uids), kind)
        return None

    def _search(self, folder: str, code: str) -> list[int]:
        try:
            self.client.select_folder(folder)
            return [int(uid) for uid in self.client.search(["HEADER", WARMUP_HEADER, code])]
        except IMAP_ERRORS as error:
            raise ImapFailure(f"searching {folder} failed: {error}") from error

    def fetch(self, found: Found) -> bytes:
        """The whole message, without marking it read."""
        try:
            self.client.select_folder(found.folder)
            data = self.client.fetch([found.uid], ["BODY.PEEK[]"])
        except IMAP_ERRORS as error:
            raise ImapFailure(f"reading the message failed: {error}") from error
        item = data.get(found.uid, {})
        raw = item.get(b"BODY[]")
        if not isinstance(raw, bytes):
            raise ImapFailure("the server sent no message body")
        return raw

    def rescue(self, found: Found, code: str) -> Found:
        """Move a message out of spam into the inbox, marked not-spam."""
        self._move(found, self.folders().inbox)
        moved = self._search(self.folders().inbox, code)
        if not moved:
            raise ImapFailure("the message was moved out of spam but is not in the inbox")
        rescued = Found(self.folders().inbox, max(moved), "inbox")
        self._flags(rescued, add=["$NotJunk"], remove=["$Junk", "Junk"])
        return rescued

    def read(self, found: Found, *, flag: bool) -> None:
        self._flags(found, add=["\\Seen", *(["\\Flagged"] if flag else [])], remove=[])

    def file_away(self, found: Found) -> None:
        """Out of the inbox into the archive (created when the mailbox has none)."""
        archive = self.folders().archive
        if archive is None:
            try:
                self.client.create_folder(ARCHIVE_CREATED)
            except IMAP_ERRORS as error:
                if "exists" not in str(error).lower():
                    raise ImapFailure(
                        f"the archive folder could not be created: {error}"
                    ) from error
            archive = ARCHIVE_CREATED
            self._folders = Folders(self.folders().inbox, self.folders().junk, archive)
        if found.folder != archive:
            self._move(found, archive)

    def _flags(self, found: Found, *, add: list[str], remove: list[str]) -> None:
        try:
            self.client.select_folder(found.folder)
            if add:
                self.client.add_flags([found.uid], add, silent=True)
            if remove:
                self.client.remove_flags([found.uid], remove, silent=True)
        except IMAP_ERRORS as error:
            raise ImapFailure(f"setting flags failed: {error}") from error

    def _move(self, found: Found, destination: str) -> None:
        try:
            self.client.select_folder(found.folder)
            if self.client.has_capability("MOVE"):
                self.client.move([found.uid], destination)
            else:
                self.client.copy([found.uid], destination)
                self.client.delete_messages([found.uid], silent=True)
                self.client.expunge()
        except IMAP_ERRORS as error:
            raise ImapFailure(f"moving the message to {destination} failed: {error}") from error

    def close(self) -> None:
        with contextlib.suppress(*IMAP_ERRORS):
            self.client.logout()
