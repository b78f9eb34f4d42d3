"""HTML pages for the workspace: dashboard, settings, members, invitations and API tokens."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.decorators import workspace_view
from accounts.forms import ApiTokenForm, InvitationForm, RoleForm, WorkspaceForm
from accounts.http import AuthedRequest, WorkspaceRequest
from accounts.models import ApiToken, Invitation, Role, User
from billing.services.entitlements import seat_require_room
from config.errors import ApplicationError
from config.forms import form_add_refusal
from leaderboard.selectors import workspace_standing
from sending.models import SendingDomain
from sending.selectors import domain_list
from warming.selectors import warming_today


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "landing.html")


@login_required
def app_home(request: AuthedRequest) -> HttpResponse:
    """Send the user to their current workspace, or help them get one."""
    membership = request.current_membership
    if membership:
        return redirect("dashboard", membership.workspace.public_id)
    invitations = selectors.invitation_list_for_user(user=request.user)
    return render(
        request, "accounts/no_workspace.html", {"invitations": invitations, "form": WorkspaceForm()}
    )


@login_required
def workspace_new(request: AuthedRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.workspace_create(
                owner=request.user, name=form.cleaned_data["name"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"Workspace “{workspace.name}” created.")
            return redirect("dashboard", workspace.public_id)
    return render(request, "accounts/workspace_new.html", {"form": form})


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    invitation = selectors.invitation_get_by_token(token)
    if invitation is None:
        raise Http404("No such invitation.")
    if request.method == "POST" and isinstance(request.user, User):
        seat_require_room(workspace=invitation.workspace, inviting=False)
        membership = services.invitation_accept(invitation=invitation, user=request.user)
        messages.success(request, f"You joined {membership.workspace.name}.")
        return redirect("dashboard", membership.workspace.public_id)
    return render(
        request,
        "accounts/invitation.html",
        {"invitation": invitation, "is_open": invitation.is_open()},
    )


@login_required
@require_POST
def invitation_accept_listed(request: AuthedRequest, invitation_id: int) -> HttpResponse:
    """Accept one of the open invitations addressed to the signed-in user's email."""
    invitation = get_object_or_404(
        selectors.invitation_list_for_user(user=request.user), pk=invitation_id
    )
    seat_require_room(workspace=invitation.workspace, inviting=False)
    membership = services.invitation_accept(invitation=invitation, user=request.user)
    messages.success(request, f"You joined {membership.workspace.name}.")
    return redirect("dashboard", membership.workspace.public_id)


def _dashboard_domains(request: WorkspaceRequest) -> list[SendingDomain]:
    return list(domain_list(workspace=request.workspace))


@workspace_view()
def dashboard(request: WorkspaceRequest) -> HttpResponse:
    steps = selectors.onboarding_steps(workspace=request.workspace)
    return render(
        request,
        "accounts/dashboard.html",
        {
            "invitations": selectors.invitation_list_for_user(user=request.user),
            "audit_logs": selectors.audit_log_list(workspace=request.workspace, limit=10),
            "domains": _dashboard_domains(request),
            "steps": steps,
            "steps_done": sum(step.done for step in steps),
            "next_step": next((step for step in steps if not step.done), None),
            "warming": warming_today(workspace=request.workspace),
            "board": workspace_standing(workspace=request.workspace),
        },
    )


@workspace_view()
def dashboard_domains(request: WorkspaceRequest) -> HttpResponse:
    """The live score table (re-fetched by HTMX when a score event arrives)."""
    return render(
        request,
        "accounts/partials/dashboard_domains.html",
        {"domains": _dashboard_domains(request)},
    )


def _settings_context(request: WorkspaceRequest, **extra: Any) -> dict[str, Any]:
    workspace = request.workspace
    is_owner = request.membership.has_role(Role.OWNER)
    context = {
        "workspace_form": WorkspaceForm(initial={"name": workspace.name}),
        "invitation_form": InvitationForm(),
        "token_form": ApiTokenForm(),
        "memberships": selectors.membership_list(workspace=workspace),
        "invitations": selectors.invitation_list_open(workspace=workspace),
        "tokens": selectors.api_token_list(
            workspace=workspace, user=request.user, all_users=is_owner
        ),
        "roles": Role.choices,
        "can_manage": request.membership.has_role(Role.ADMIN),
        "is_owner": is_owner,
        "now": timezone.now(),
    }
    context.update(extra)
    return context


@workspace_view()
def workspace_settings(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "accounts/settings.html", _settings_context(request))


def _back_to_settings(request: WorkspaceRequest) -> HttpResponse:
    return redirect("workspace_settings", request.workspace.public_id)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def workspace_rename(request: WorkspaceRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST)
    if not form.is_valid():
        return render(
            request, "accounts/settings.html", _settings_context(request, workspace_form=form)
        )
    services.workspace_rename(
        workspace=request.workspace, actor=request.user, name=form.cleaned_data["name"]
    )
    messages.success(request, "Workspace renamed.")
    return _back_to_settings(request)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def invitation_create(request: WorkspaceRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            seat_require_room(workspace=request.workspace, inviting=True)
            services.invitation_create(
                workspace=request.workspace,
                inviter=request.user,
                # The link points where the inviter reached us (host and port as served).
                site_url=request.build_absolute_uri("/"),
                **form.cleaned_data,
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
            return _back_to_settings(request)
    return render(
        request, "accounts/settings.html", _settings_context(request, invitation_form=form)
    )


@workspace_view(min_role=Role.ADMIN)
@require_POST
def invitation_revoke(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id, workspace=request.workspace)
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"Invitation to {invitation.email} revoked.")
    return _back_to_settings(request)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def membership_role(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        selectors.membership_list(workspace=request.workspace), pk=membership_id
    )
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return _back_to_settings(request)
    role = form.cleaned_data["role"]
    services.membership_role_change(membership=membership, actor=request.user, role=role)
    messages.success(request, f"{membership.user.email} is now {Role(role).label}.")
    return _back_to_settings(request)


@workspace_view()
@require_POST
def membership_remove(request: WorkspaceRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(
        selectors.membership_list(workspace=request.workspace), pk=membership_id
    )
    leaving = membership.user_id == request.user.pk
    services.membership_remove(membership=membership, actor=request.user)
    if leaving:
        messages.success(request, f"You left {request.workspace.name}.")
        return redirect("app_home")
    messages.success(request, f"{membership.user.email} was removed.")
    return _back_to_settings(request)


@workspace_view()
@require_POST
def api_token_create(request: WorkspaceRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST)
    issued = None
    if form.is_valid():
        try:
            issued = services.api_token_create(
                user=request.user, workspace=request.workspace, name=form.cleaned_data["name"]
            )
        except ApplicationError as error:
            form_add_refusal(form, error)
        else:
            form = ApiTokenForm()
    # Rendered, not redirected: the secret is shown in this response only and never stored.
    return render(
        request,
        "accounts/settings.html",
        _settings_context(request, token_form=form, issued_token=issued),
    )


@workspace_view()
@require_POST
def api_token_revoke(request: WorkspaceRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, workspace=request.workspace)
    services.api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token “{token.name}” revoked.")
    return _back_to_settings(request)
