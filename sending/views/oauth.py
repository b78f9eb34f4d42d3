"""Connect with Google / Microsoft: send the customer to the provider's consent, and take them
back to the add-mailbox page (ready for the next mailbox) or to the reconnected mailbox."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import workspace_view
from accounts.http import WorkspaceRequest
from accounts.models import Role, User
from config.errors import ApplicationError
from sending import selectors
from sending.services.connection import mailbox_oauth_connect
from sending.services.oauth import oauth_consent_claim, oauth_consent_start


@workspace_view(min_role=Role.ADMIN)
@require_POST
def mailbox_connect(request: WorkspaceRequest, provider: str) -> HttpResponse:
    """Start a consent; with `mailbox` in the form, it reconnects that mailbox."""
    mailbox = None
    if request.POST.get("mailbox"):
        mailbox_id = request.POST["mailbox"]
        found = mailbox_id.isdigit() and selectors.mailbox_get(
            workspace=request.workspace, pk=int(mailbox_id)
        )
        if not found:
            raise ApplicationError("No such mailbox.", status=404)
        mailbox = found
    url = oauth_consent_start(
        session=request.session,
        workspace=request.workspace,
        actor=request.user,
        provider=provider,
        mailbox=mailbox,
    )
    return redirect(url)


@login_required
@require_GET
def mailbox_oauth_callback(request: HttpRequest) -> HttpResponse:
    """Where the provider sends the customer back (OAUTH_REDIRECT_URL)."""
    assert isinstance(request.user, User)
    try:
        consent = oauth_consent_claim(
            session=request.session, actor=request.user, state=request.GET.get("state", "")
        )
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("app_home")
    workspace = consent.workspace
    back = (
        ("mailbox_detail", workspace.public_id, consent.mailbox_id)
        if consent.mailbox_id
        else ("mailboxes", workspace.public_id)
    )
    try:
        connected = mailbox_oauth_connect(consent=consent, actor=request.user, params=request.GET)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect(*back)
    mailbox = connected.mailbox
    label = consent.provider.label
    verb = "connected" if connected.created else "reconnected"
    if mailbox.is_connected:
        text = f"{mailbox.address} {verb} with {label}: SMTP and IMAP accept its sign-in."
        if not consent.mailbox_id:
            text += " Connect the next one, or open it to set its daily limit."
        messages.success(request, text)
    else:
        messages.error(
            request,
            f"{mailbox.address} {verb} with {label}, but the connection test failed: "
            f"{mailbox.connection_error}",
        )
    if connected.testing_mode:
        messages.warning(
            request,
            "Google will end this connection in 7 days: the platform's Google app is in "
            "Testing mode. The operator publishes the app (and has it verified) to keep "
            "mailboxes connected.",
        )
    return redirect(*back)
