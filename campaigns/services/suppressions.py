"""The workspace's suppression list: addresses and whole domains never mailed."""


def suppression_import_run(*, import_id: int) -> None:
    """Import one uploaded CSV of suppressions, streamed from its stored file."""
    raise NotImplementedError
