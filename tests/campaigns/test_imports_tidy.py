"""Imports a worker left behind: queued again when their task was lost, failed with advice when
their worker died mid-way."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from campaigns.models import ImportState, Lead, LeadImport
from campaigns.services.imports import imports_tidy, lead_import_start, lead_import_upload


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def queued(owner) -> LeadImport:
    made = lead_import_upload(
        workspace=owner.workspace,
        actor=owner.user,
        upload=SimpleUploadedFile("leads.csv", b"email\nada@example.com\nbo@example.com\n"),
    )
    # The task is enqueued when the transaction commits; here it never is (a lost task).
    return lead_import_start(
        lead_import=made, actor=owner.user, mapping={"0": "email"}, new_list_name="Fair"
    )


def test_a_lost_import_task_is_queued_again_and_runs_once(
    owner, django_capture_on_commit_callbacks
):
    lead_import = queued(owner)
    assert lead_import.state == ImportState.QUEUED
    assert imports_tidy() == {"failed": 0, "queued_again": 0}  # not lost yet
    later = timezone.now() + timedelta(minutes=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert imports_tidy(now=later) == {"failed": 0, "queued_again": 1}
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.DONE
    assert Lead.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        assert imports_tidy(now=later) == {"failed": 0, "queued_again": 0}


def test_an_import_whose_worker_died_is_failed_with_what_to_do(owner):
    lead_import = queued(owner)
    started = timezone.now()
    LeadImport.objects.filter(pk=lead_import.pk).update(
        state=ImportState.RUNNING, started_at=started
    )
    assert imports_tidy(now=started + timedelta(minutes=30))["failed"] == 0  # still running
    assert imports_tidy(now=started + timedelta(hours=2))["failed"] == 1
    lead_import.refresh_from_db()
    assert lead_import.state == ImportState.FAILED
    assert "upload the file again" in lead_import.error
