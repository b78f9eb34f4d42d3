"""CSV imports of leads."""


def lead_import_run(*, import_id: int) -> None:
    """Import one uploaded CSV of leads, streamed from its stored file."""
    raise NotImplementedError
