from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html_join

from accounts.models import User
from config.admin_actions import ConsoleAdmin, Outcome, ReasonedAction, ServiceOwnedAdmin
from reputation.core.pool_map import pool_map_export
from reputation.ipwarmup import pool_weights, warmup_share, warmup_week
from reputation.models import (
    BlocklistCheck,
    DeadLetterRecord,
    EgressSource,
    Event,
    Pool,
    PoolMapExport,
    PoolMembership,
    RawRecord,
    ReputationAlert,
    ScoreHistory,
    UnmatchedReport,
)
from reputation.selectors import tsa_state_get
from reputation.services import blocklists as blocklist_services
from reputation.services.dead_letters import dead_letter_replay
from sending.models import SendingDomain


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "kind", "domain", "mailbox", "recipient", "classification"]
    list_filter = ["kind", "message_kind", "occurred_at"]
    search_fields = ["recipient", "message_id", "domain__name", "domain__public_id"]
    list_select_related = ["domain", "mailbox", "mailbox__domain"]
    date_hierarchy = "occurred_at"


UNMATCHED_FIELDS = (
    "kind",
    "occurred_at",
    "tenant",
    "domain",
    "recipient",
    "sender",
    "message_id",
    "reason",
    "source_key",
    "created_at",
    "record",
)


@admin.register(UnmatchedReport)
class UnmatchedReportAdmin(ReadOnlyAdmin):
    """Complaints and out-of-band bounces that matched no message the platform sent for the
    domain they named: never scored, kept so staff can see who is being targeted (or what the
    matching misses)."""

    list_display = ["occurred_at", "kind", "domain", "tenant", "recipient", "reason"]
    list_filter = ["kind", "occurred_at"]
    search_fields = ["recipient", "tenant", "message_id", "sender", "domain__name"]
    list_select_related = ["domain"]
    fields = UNMATCHED_FIELDS
    readonly_fields = UNMATCHED_FIELDS

    @admin.display(description="Record (JSON)")
    def record(self, row: UnmatchedReport) -> str:
        return row.raw_record.payload if row.raw_record else "-"


@admin.register(RawRecord)
class RawRecordAdmin(ReadOnlyAdmin):
    list_display = ["id", "record_key", "received_at", "waiting"]
    list_filter = ["received_at"]
    search_fields = ["record_key"]

    @admin.display(boolean=True, description="Waiting to be processed")
    def waiting(self, record: RawRecord) -> bool:
        return hasattr(record, "pending")


DEAD_LETTER_FIELDS = (
    "raw_record_id",
    "record_key",
    "received_at",
    "error",
    "attempts",
    "first_failed_at",
    "last_failed_at",
    "replayed_at",
    "payload",
)


@admin.register(DeadLetterRecord)
class DeadLetterRecordAdmin(ServiceOwnedAdmin):
    """Records processing set aside with their error; replaying queues one again (after a fix)."""

    show_full_result_count = False
    list_display = [
        "id",
        "raw_record_id",
        "short_error",
        "attempts",
        "first_failed_at",
        "last_failed_at",
        "replayed_at",
        "waiting",
    ]
    list_filter = ["last_failed_at", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["raw_record__record_key", "error"]
    list_select_related = ["raw_record", "raw_record__pending"]
    fields = DEAD_LETTER_FIELDS
    readonly_fields = DEAD_LETTER_FIELDS
    actions = [
        ReasonedAction(
            name="replay",
            description="Replay: queue the record for processing again",
            done="record(s) queued again",
            call=lambda row, staff, why: dead_letter_replay(
                dead_letter=row, actor=staff, reason=why
            ),
            rows=lambda qs: qs.filter(raw_record__pending__isnull=True),
            nothing="The selected records are already queued.",
            note="The reason is recorded in the audit log with your name. A record that fails "
            "again comes back here with one more attempt.",
        )
    ]

    @admin.display(description="Error")
    def short_error(self, row: DeadLetterRecord) -> str:
        return row.error[:120]

    @admin.display(boolean=True, description="Queued again")
    def waiting(self, row: DeadLetterRecord) -> bool:
        return hasattr(row.raw_record, "pending")

    @admin.display(description="Record key")
    def record_key(self, row: DeadLetterRecord) -> str:
        return row.raw_record.record_key

    @admin.display(description="Received at")
    def received_at(self, row: DeadLetterRecord) -> str:
        return f"{row.raw_record.received_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="Record (JSON)")
    def payload(self, row: DeadLetterRecord) -> str:
        return row.raw_record.payload


@admin.register(ScoreHistory)
class ScoreHistoryAdmin(ReadOnlyAdmin):
    list_display = ["at", "domain", "score", "tier", "provisional", "scoring_version"]
    list_filter = ["tier", "provisional", "scoring_version"]
    search_fields = ["domain__name", "domain__public_id"]
    list_select_related = ["domain"]


@admin.register(ReputationAlert)
class ReputationAlertAdmin(ReadOnlyAdmin):
    list_display = ["opened_at", "code", "level", "domain", "mailbox", "resolved_at", "message"]
    list_filter = ["code", "level", "resolved_at"]
    search_fields = ["domain__name", "domain__public_id", "message"]
    list_select_related = ["domain", "mailbox", "mailbox__domain"]


SOURCE_NOTE = (
    "The reason is recorded in the audit log with your name and as the source's state reason."
)


def _latest_listing(source: EgressSource) -> str:
    latest: dict[str, BlocklistCheck] = {}
    for check in source.checks.order_by("-checked_at")[:20]:
        latest.setdefault(check.zone, check)
    listed = [f"{c.zone} ({c.answer})" for c in latest.values() if c.listed]
    if listed:
        return "LISTED: " + ", ".join(listed)
    return "clean" if latest else "not checked yet"


def _pull(source: EgressSource, staff: User, reason: str) -> Outcome:
    promoted = blocklist_services.source_pull(source=source, actor=staff, reason=reason)
    if promoted is None:
        return Outcome(
            f"{source.name}: pulled; no standby source was left to promote.", messages.WARNING
        )
    return Outcome(f"{source.name}: pulled; {promoted.name} promoted from standby.")


def _rotate(pool: Pool, staff: User, reason: str) -> Outcome:
    swapped = blocklist_services.pool_rotate(pool=pool, actor=staff, reason=reason)
    if not swapped:
        return Outcome(f"{pool.name}: no standby source to swap in.", messages.WARNING)
    return Outcome(f"{pool.name}: {', '.join(swapped)}.")


@admin.register(EgressSource)
class EgressSourceAdmin(ConsoleAdmin):
    list_display = [
        "name",
        "source_address",
        "ehlo_domain",
        "state",
        "warmup",
        "pool_names",
        "listing",
        "state_changed_at",
    ]
    list_filter = ["state", "pools"]
    search_fields = ["name", "source_address", "ehlo_domain"]
    # The state belongs to the services (pull, reinstate, rotation, blocklist checks), and so
    # does the warm-up start once the source exists (a standby source restarts it when promoted).
    readonly_fields = ["state", "state_reason", "state_changed_at", "created_at"]
    actions = [
        ReasonedAction(
            name="pull",
            description="Pull from all pools (weight 0) and promote a standby source",
            done="source(s) pulled",
            call=_pull,
            rows=lambda qs: qs.exclude(state=EgressSource.State.PULLED),
            nothing="The selected sources are already pulled.",
            note=SOURCE_NOTE + " Staff are emailed; the pool map is re-exported.",
        ),
        ReasonedAction(
            name="reinstate",
            description="Reinstate (active again)",
            done="source(s) reinstated; the pool map is re-exported",
            call=lambda source, staff, why: blocklist_services.source_reinstate(
                source=source, actor=staff, reason=why
            ),
            rows=lambda qs: qs.exclude(state=EgressSource.State.ACTIVE),
            nothing="The selected sources are already active.",
            note=SOURCE_NOTE,
        ),
    ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: EgressSource | None = None
    ) -> list[str]:
        fields = list(self.readonly_fields)
        return [*fields, "warmup_started_on"] if obj is not None else fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[EgressSource]:
        return super().get_queryset(request).prefetch_related("pools")

    def save_model(
        self, request: HttpRequest, obj: EgressSource, form: ModelForm, change: bool
    ) -> None:
        # Only what the form changed: a full save would write back a state a service (a
        # blocklist check pulling this source, say) changed while the form was open.
        if change:
            obj.save(update_fields=form.changed_data)
        else:
            obj.save()

    @admin.display(description="Warm-up")
    def warmup(self, source: EgressSource) -> str:
        today = timezone.localdate()
        share = warmup_share(source.warmup_started_on, today)
        week = warmup_week(source.warmup_started_on, today)
        return f"week {week}: " + (f"{share:.0%} of the pool" if share else "equal share")

    @admin.display(description="Pools")
    def pool_names(self, source: EgressSource) -> str:
        return ", ".join(p.name for p in source.pools.all()) or "-"

    @admin.display(description="Blocklists")
    def listing(self, source: EgressSource) -> str:
        return _latest_listing(source)


class PoolMembershipInline(admin.TabularInline):
    model = PoolMembership
    extra = 0
    autocomplete_fields = ["source"]


@admin.register(Pool)
class PoolAdmin(ConsoleAdmin):
    """The pool overview: sources, weights, warm-up stages, listings, tenants, last export."""

    list_display = ["name", "weights", "tenants", "last_export"]
    inlines = [PoolMembershipInline]
    actions = [
        ReasonedAction(
            name="rotate",
            description="Rotate: swap standby sources in",
            done="pool(s) rotated",
            call=_rotate,
            note="The reason is recorded in the audit log with your name and as the state "
            "reason of the sources swapped.",
        ),
        "export_now",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the pools are the tiers: fixed

    def has_delete_permission(self, request: HttpRequest, obj: Pool | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Pool]:
        return super().get_queryset(request).prefetch_related("memberships__source")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        self._tenants = dict(
            SendingDomain.objects.exclude(status__in=["pending_dns", "retired"])
            .values_list("tier")
            .annotate(n=Count("id"))
        )
        self._export = PoolMapExport.objects.first()
        extra_context = {**(extra_context or {}), "tsa": tsa_state_get()}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Sources and weights (state, warm-up week)")
    def weights(self, pool: Pool) -> str:
        if pool.name == Pool.Name.QUARANTINE:
            return "always empty: quarantined mail is held"
        today = timezone.localdate()
        members = [m.source for m in pool.memberships.all()]
        weights = pool_weights(
            [(s.name, s.warmup_started_on) for s in members if s.state == "active"], today
        )
        return (
            format_html_join(
                ", ",
                "{} {} ({}, week {}; {})",
                (
                    (
                        s.name,
                        weights.get(s.name, 0),
                        s.state,
                        warmup_week(s.warmup_started_on, today),
                        _latest_listing(s),
                    )
                    for s in members
                ),
            )
            or "no sources"
        )

    @admin.display(description="Tenants")
    def tenants(self, pool: Pool) -> int:
        return getattr(self, "_tenants", {}).get(pool.name, 0)

    @admin.display(description="Last export")
    def last_export(self, pool: Pool) -> str:
        export = getattr(self, "_export", None)
        if export is None:
            return "never"
        when = f"{export.exported_at:%Y-%m-%d %H:%M:%S}"
        return f"v{export.version} at {when} ({export.tenants} tenants)"

    @admin.action(description="Export the pool map to Redis now")
    def export_now(self, request: HttpRequest, queryset: QuerySet[Pool]) -> None:
        export = pool_map_export()
        self.message_user(
            request,
            f"Exported version {export.version} ({export.tenants} tenants).",
            messages.SUCCESS,
        )


@admin.register(BlocklistCheck)
class BlocklistCheckAdmin(ReadOnlyAdmin):
    list_display = ["checked_at", "kind", "target", "zone", "listed", "answer", "error"]
    list_filter = ["kind", "listed", "zone", "checked_at"]
    search_fields = ["target"]


@admin.register(PoolMapExport)
class PoolMapExportAdmin(ReadOnlyAdmin):
    list_display = ["exported_at", "version", "tenants", "duration_ms"]
