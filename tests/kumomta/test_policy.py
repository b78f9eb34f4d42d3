"""The KumoMTA policy (kumomta/policy/), run in Lua 5.4 against the stand-in and a real Redis."""

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import free_port
from tests.kumomta.conftest import (
    HOOK_TOKEN,
    SETTINGS,
    TENANTS,
    hook_url,
    replicate,
    wait_replicated,
)
from tests.kumomta.kumo_standin import (
    POLICY_DIR,
    KumoStandin,
    PolicyError,
    Rejected,
    ScheduledQueue,
    message_text,
    policy_env,
    redis_calls_for,
    to_python,
)


@pytest.fixture(scope="module")
def dkim_key() -> tuple[str, str]:
    """A PEM private key (as the platform publishes it) and its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def queue_config(standin: KumoStandin, tenant: str | None, domain: str = "example.org") -> dict:
    return to_python(standin.fire("get_queue_config", domain, tenant, None, None))


def queue_pool(standin: KumoStandin, tenant: str | None) -> str:
    config = queue_config(standin, tenant)
    assert config["refresh_strategy"] == "Epoch"
    return config["egress_pool"]


def receive(standin: KumoStandin, event: str = "smtp_server_message_received", **message):
    msg = standin.new_message(message_text(**message))
    standin.fire(event, msg, None)
    return msg


def path_config(standin: KumoStandin, domain: str, site: str, source: str = "ip-1") -> dict:
    return to_python(standin.fire("get_egress_path_config", domain, source, site))


# --- 1. syntax and load ------------------------------------------------------------------------


def test_it_passes_luac_on_every_lua_file():
    luac = shutil.which("luac5.4")
    assert luac, "luac5.4 is missing: install Debian's lua5.4 package"
    files = sorted(POLICY_DIR.parent.rglob("*.lua")) + sorted(Path(__file__).parent.glob("*.lua"))
    assert POLICY_DIR / "init.lua" in files
    for path in files:
        result = subprocess.run([luac, "-p", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_it_tests_no_value_for_being_a_table_outside_the_redis_reader():
    # Memoized tables are userdata: `type(v) == 'table'` is false for every one of them. Only
    # store.lua sees Redis replies before they are memoized.
    pattern = re.compile(r"""[=~]=\s*['"]table['"]""")
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(POLICY_DIR.glob("*.lua"))
        if path.name != "store.lua"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_it_does_no_redis_or_http_work_while_loading(contract):
    # A `require`d module's main chunk cannot yield on a real node: a Redis query (or a memoized
    # call that misses) there fails, even when the policy catches the error.
    contract.publish()
    standin = KumoStandin(env=policy_env(contract.url, contract.prefix))

    standin.load_policy()
    standin.recycle()

    assert standin.refused_yields == []
    assert standin.redis_call_count == 0


# --- 2. routing from the map -------------------------------------------------------------------


def test_it_routes_each_tier_to_its_pool(contract, make_policy):
    contract.publish()
    standin = make_policy()

    for tenant, pool in TENANTS.items():
        assert queue_pool(standin, tenant) == pool


def test_it_builds_pools_and_sources_from_redis(contract, make_policy):
    contract.publish()
    standin = make_policy()

    premium = to_python(standin.fire("get_egress_pool", "premium"))
    assert premium["name"] == "premium"
    assert premium["entries"] == [{"name": "ip-1", "weight": 5}, {"name": "ip-2", "weight": 1}]
    assert premium["ttl"] == "1 minute"
    standard = to_python(standin.fire("get_egress_pool", "standard"))
    assert standard["entries"][1] == {"name": "ip-4", "weight": 0}
    # A pool without sources is valid: KumoMTA pauses it, holding quarantined mail.
    assert not to_python(standin.fire("get_egress_pool", "quarantine"))["entries"]

    source = to_python(standin.fire("get_egress_source", "ip-2"))
    assert source["source_address"] == "192.0.2.2"
    assert source["ehlo_domain"] == "mta2.example.net"

    with pytest.raises(PolicyError, match="not defined"):
        standin.fire("get_egress_pool", "platinum")
    with pytest.raises(PolicyError, match="not defined"):
        standin.fire("get_egress_source", "ip-9")


def test_it_holds_mail_of_a_tenant_removed_from_the_map(contract, make_policy):
    contract.publish()
    standin = make_policy()

    assert queue_pool(standin, "dom_gone") == "quarantine"
    assert queue_pool(standin, None) == "quarantine"


@pytest.mark.parametrize(
    "queue", ["trustgate.log_hook", "generator.kumomta.internal", "http://tsa:8008.tsa.kumomta"]
)
def test_it_leaves_internal_queues_to_their_helpers(contract, make_policy, queue):
    contract.publish()
    standin = make_policy()

    config = queue_config(standin, None, domain=queue)

    if queue == "trustgate.log_hook":
        assert config["protocol"]["custom_lua"]["constructor"] == "make.trustgate.log_hook"
    else:
        assert config is None  # no handler answered: KumoMTA's defaults apply


# --- 3. caching and the config epoch -----------------------------------------------------------


def test_it_sees_a_tier_change_within_the_memoize_ttl(contract, make_policy):
    contract.publish()
    standin = make_policy()
    assert queue_pool(standin, "dom_premium") == "premium"

    contract.set_pool("dom_premium", "standard")
    assert queue_pool(standin, "dom_premium") == "premium"
    standin.clock.advance(4.9)
    assert queue_pool(standin, "dom_premium") == "premium"
    standin.clock.advance(0.2)
    assert queue_pool(standin, "dom_premium") == "standard"

    contract.set_pool("dom_premium", "quarantine")
    receive(standin, tenant="dom_premium")
    standin.clock.advance(5.1)
    with pytest.raises(Rejected, match="quarantined"):
        receive(standin, tenant="dom_premium")


def test_it_takes_the_memoize_ttl_from_the_node_setting(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_MEMOIZE_TTL="30 seconds")
    assert queue_pool(standin, "dom_rehab") == "rehab"

    contract.set_pool("dom_rehab", "standard")
    standin.clock.advance(29)
    assert queue_pool(standin, "dom_rehab") == "rehab"
    standin.clock.advance(2)
    assert queue_pool(standin, "dom_rehab") == "standard"


def test_an_epoch_bump_refreshes_routing_at_once(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_MEMOIZE_TTL="1 hour")
    queue = ScheduledQueue(standin, "example.org", "dom_standard")
    assert queue.pool() == "standard"
    receive(standin, tenant="dom_standard")

    contract.set_pool("dom_standard", "quarantine")
    standin.clock.advance(600)  # queues with the Epoch strategy are not refreshed by time
    assert queue.pool() == "standard"
    receive(standin, tenant="dom_standard")

    standin.bump_config_epoch()  # what the platform does after publishing the change

    assert queue.pool() == "quarantine"
    assert queue.refreshes == 2
    with pytest.raises(Rejected, match="quarantined"):
        receive(standin, tenant="dom_standard")


# --- 4. reception ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        (None, "no X-Tenant header"),
        ("dom_nobody", "unknown tenant"),
        ("dom_quarantined", "quarantined"),
        ("dom_premium@other", "malformed X-Tenant"),
    ],
)
@pytest.mark.parametrize("event", ["smtp_server_message_received", "http_message_generated"])
def test_it_refuses_mail_it_must_not_send(contract, make_policy, event, tenant, reason):
    contract.publish()
    standin = make_policy()

    with pytest.raises(Rejected) as refused:
        receive(standin, event, tenant=tenant)

    assert refused.value.code == 550
    assert refused.value.message.startswith("5.7.1 ")
    assert reason in refused.value.message


@pytest.mark.parametrize(
    ("message_id", "reason"),
    [
        (None, "no Message-ID header"),
        ("<>", "malformed Message-ID"),
        ("<two words@brand.example>", "malformed Message-ID"),
        ("<tab\tinside@brand.example>", "malformed Message-ID"),
        ("<ctl\x01@brand.example>", "malformed Message-ID"),
        ("<a<b@brand.example>", "malformed Message-ID"),
        (f"<{'x' * 250}@brand.example>", "malformed Message-ID"),
    ],
)
@pytest.mark.parametrize("event", ["smtp_server_message_received", "http_message_generated"])
def test_it_refuses_mail_without_a_usable_message_id(
    contract, make_policy, event, message_id, reason
):
    contract.publish()
    standin = make_policy()

    with pytest.raises(Rejected) as refused:
        receive(standin, event, tenant="dom_premium", message_id=message_id)

    assert refused.value.code == 550
    assert refused.value.message.startswith("5.6.0 ")
    assert reason in refused.value.message


def test_it_refuses_a_message_with_two_message_ids(contract, make_policy):
    contract.publish()
    standin = make_policy()
    text = message_text(tenant="dom_premium", message_id="<1@brand.example>")
    text = text.replace("Subject:", "Message-ID: <2@brand.example>\r\nSubject:")

    with pytest.raises(Rejected, match="more than one Message-ID"):
        standin.fire("smtp_server_message_received", standin.new_message(text), None)


@pytest.mark.parametrize("event", ["smtp_server_message_received", "http_message_generated"])
def test_it_moves_the_ids_to_meta_and_signs_last(contract, make_policy, dkim_key, event):
    pem, txt_record = dkim_key
    contract.publish(dkim_keys={"brand.example": ("tg2026", pem)})
    standin = make_policy()

    msg = receive(
        standin,
        event,
        tenant="dom_standard",
        campaign="cmp_42",
        kind="campaign",
        message_id=" <m-1.abc@brand.example> ",
    )

    assert standin.get_meta(msg, "tenant") == "dom_standard"
    assert standin.get_meta(msg, "campaign") == "cmp_42"
    assert standin.get_meta(msg, "kind") == "campaign"
    assert standin.get_meta(msg, "message_id") == "m-1.abc@brand.example"
    for name in ("X-Tenant", "X-Campaign", "X-Kind"):
        assert standin.header_values(msg, name) == []
    assert standin.message_ops(msg)[-1] == "dkim_sign:brand.example"

    data = standin.message_data(msg)
    assert data.startswith("DKIM-Signature:")
    assert "s=tg2026" in data and "d=brand.example" in data
    lookups = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        lookups.append(name)
        return txt_record.encode()

    assert dkim.verify(data.encode(), dnsfunc=dns)
    assert lookups == [b"tg2026._domainkey.brand.example."]


def test_it_adds_a_trace_header_naming_only_the_tenant_and_the_message(contract, make_policy):
    contract.publish()
    standin = make_policy()
    forged = message_text(
        tenant="dom_premium", campaign="cmp_7", kind="warmup", message_id="<42@brand.example>"
    ).replace("Subject:", "X-KumoRef: eyJ0ZW5hbnQiOiJzb21lb25lLWVsc2UifQ==\r\nSubject:")
    msg = standin.new_message(forged, recipient="reader@example.org")

    standin.fire("smtp_server_message_received", msg, None)

    # Recipients read it (it is only base64): what complaint matching needs, nothing more.
    [trace] = standin.header_values(msg, "X-KumoRef")
    assert json.loads(base64.b64decode(trace)) == {
        "_@_": "\\_/",
        "recipient": "reader@example.org",
        "tenant": "dom_premium",
        "message_id": "42@brand.example",
    }
    # The log records still carry all of it.
    assert standin.get_meta(msg, "campaign") == "cmp_7"
    assert standin.get_meta(msg, "kind") == "warmup"


def test_it_sends_unsigned_and_logs_when_the_domain_has_no_key(contract, make_policy):
    contract.publish()
    standin = make_policy()

    msg = receive(standin, tenant="dom_premium", from_address="a@unverified.example")

    assert not any(op.startswith("dkim_sign") for op in standin.message_ops(msg))
    assert any("no key for unverified.example" in log["text"] for log in standin.logs)


def test_it_lets_feedback_reports_through_to_the_fbl_domain(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_FBL_DOMAIN="fbl.example.net")
    report = standin.new_message(
        message_text(tenant=None, message_id=None), recipient="arf@fbl.example.net"
    )

    standin.fire("smtp_server_message_received", report, None)

    listener = to_python(standin.fire("get_listener_domain", "FBL.example.net", "0.0.0.0:25", None))
    assert listener["log_arf"] == "LogThenDrop"
    assert listener["log_oob"] == "LogThenDrop"
    assert standin.fire("get_listener_domain", "example.org", "0.0.0.0:25", None) is None


# --- 5. re-sends -------------------------------------------------------------------------------


def test_it_drops_a_resend_of_a_message_it_already_accepted(contract, make_policy, dkim_key):
    contract.publish(
        settings=SETTINGS | {"accepted_ttl": "3600"},
        dkim_keys={"brand.example": ("tg2026", dkim_key[0])},
    )
    first_node, second_node = make_policy(), make_policy()
    noted = f"{contract.prefix}accepted:7@brand.example"

    first = receive(first_node, tenant="dom_premium", message_id="<7@brand.example>")
    assert standin_queue(first_node, first) is None
    assert 3590 < contract.client.ttl(noted) <= 3600

    again = receive(second_node, tenant="dom_premium", message_id="<7@brand.example>")

    assert standin_queue(second_node, again) == "null"  # KumoMTA's discard queue
    assert not any(op.startswith("dkim_sign") for op in second_node.message_ops(again))
    assert any("re-send" in log["text"] for log in second_node.logs)

    # The platform removes the note when the MTA refused the message: it may be sent again.
    contract.client.delete(noted)
    third = receive(second_node, tenant="dom_premium", message_id="<7@brand.example>")
    assert standin_queue(second_node, third) is None
    assert second_node.message_ops(third)[-1] == "dkim_sign:brand.example"


def standin_queue(standin: KumoStandin, msg) -> str | None:
    return standin.get_meta(msg, "queue")


def test_it_keeps_the_message_id_note_for_the_platform_default_ttl(contract, make_policy):
    contract.publish()
    standin = make_policy()

    receive(standin, tenant="dom_premium", message_id="<8@brand.example>")

    assert contract.client.ttl(f"{contract.prefix}accepted:8@brand.example") > 604800 - 10


def test_it_notes_no_message_it_refuses(contract, make_policy):
    contract.publish()
    standin = make_policy()

    with pytest.raises(Rejected):
        receive(standin, tenant="dom_quarantined", message_id="<9@brand.example>")

    assert not contract.client.exists(f"{contract.prefix}accepted:9@brand.example")


@pytest.mark.parametrize("later_refusal", ["tenant quarantined since", "tenant map unreadable"])
def test_it_drops_a_resend_of_an_accepted_message_before_any_check_could_refuse_it(
    contract, make_policy, later_refusal
):
    # The answer to the first copy was lost; by the time the platform sends it again, a check
    # would refuse it. A refusal would make the platform take the first copy, which is on its
    # way, for refused too.
    contract.publish()
    first_node = make_policy()
    first = receive(first_node, tenant="dom_premium", message_id="<11@brand.example>")
    assert standin_queue(first_node, first) is None
    if later_refusal == "tenant quarantined since":
        contract.set_pool("dom_premium", "quarantine")
        node = make_policy()
    else:  # a fresh node whose replica is gone: the tenant map is unavailable (451)
        node = make_policy(TRUSTGATE_REDIS_READ_URL=f"redis://127.0.0.1:{free_port()}/0")

    again = receive(node, tenant="dom_premium", message_id="<11@brand.example>", resend=True)

    assert standin_queue(node, again) == "null"
    assert any("re-send" in log["text"] for log in node.logs)


def test_it_takes_in_the_resend_header_and_removes_it(contract, make_policy):
    contract.publish()
    standin = make_policy()

    msg = receive(standin, tenant="dom_premium", message_id="<12@brand.example>", resend=True)

    assert standin_queue(standin, msg) is None  # never accepted before: sent
    assert standin.header_values(msg, "X-Resend") == []
    assert contract.client.exists(f"{contract.prefix}accepted:12@brand.example")


def test_it_checks_the_note_first_and_writes_it_last_on_the_primary(
    contract, make_policy, dkim_key
):
    contract.publish(dkim_keys={"brand.example": ("tg2026", dkim_key[0])})
    replica_url = f"{contract.url}?protocol=resp3"  # the same server, told apart by its URL
    standin = make_policy(TRUSTGATE_REDIS_READ_URL=replica_url)
    noted = f"{contract.prefix}accepted:13@brand.example"

    msg = receive(standin, tenant="dom_premium", message_id="<13@brand.example>")

    queries = [(url, args[:2]) for url, args in standin.redis_log]
    assert queries[0] == (contract.url, ["GET", noted])
    assert queries[-1] == (contract.url, ["SET", noted])
    assert {url for url, (command, _) in queries[1:-1]} == {replica_url}  # the map's reads
    assert standin.message_ops(msg)[-1] == "dkim_sign:brand.example"


def test_it_drops_a_copy_accepted_at_the_same_time_by_another_node(contract, make_policy):
    contract.publish()
    standin = make_policy()
    noted = f"{contract.prefix}accepted:14@brand.example"

    def other_node_accepts(url: str, args: list[str]) -> None:
        if args[0] == "HMGET":  # between this node's check and its note
            contract.client.set(noted, 1)

    standin.before_redis_query = other_node_accepts

    msg = receive(standin, tenant="dom_premium", message_id="<14@brand.example>", resend=True)

    assert standin_queue(standin, msg) == "null"
    assert any("at the same time" in log["text"] for log in standin.logs)


UNCONFIRMED = (
    "4.3.0 cannot confirm whether this re-sent message was accepted before; try again later"
)


def test_it_refuses_a_resend_for_a_retry_when_the_primary_cannot_say(contract, make_policy):
    contract.publish()
    standin = make_policy(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", TRUSTGATE_REDIS_READ_URL=contract.url
    )

    with pytest.raises(Rejected) as refused:
        receive(standin, tenant="dom_premium", message_id="<15@brand.example>", resend=True)

    assert (refused.value.code, refused.value.message) == (451, UNCONFIRMED)


def test_it_refuses_a_resend_for_a_retry_when_the_note_cannot_be_written(
    contract, make_policy, redis_servers
):
    # The "primary" answers reads but refuses writes (a replica, after a mistaken failover).
    primary, replica = redis_servers(), redis_servers()
    replicate(replica, primary)
    contract.on(primary).publish()
    wait_replicated(replica, primary)
    standin = make_policy(redis_url=replica.url)

    with pytest.raises(Rejected) as refused:
        receive(standin, tenant="dom_premium", message_id="<16@brand.example>", resend=True)
    first_send = receive(standin, tenant="dom_premium", message_id="<17@brand.example>")

    assert (refused.value.code, refused.value.message) == (451, UNCONFIRMED)
    assert standin_queue(standin, first_send) is None
    assert any("without the re-send check" in log["text"] for log in standin.logs)


def test_it_accepts_without_the_resend_check_when_the_primary_is_down(contract, make_policy):
    contract.publish()
    standin = make_policy(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", TRUSTGATE_REDIS_READ_URL=contract.url
    )

    for _ in range(2):
        msg = receive(standin, tenant="dom_premium", message_id="<10@brand.example>")
        assert standin_queue(standin, msg) is None

    assert any("without the re-send check" in log["text"] for log in standin.logs)


# --- 6. HTTP injection auth --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "password", "allowed"),
    [
        ("app", "s3cret-pass", True),
        ("app", "s3cret-pas", False),
        ("app", "s3cret-passs", False),
        ("ap", "s3cret-pass", False),
        ("app", None, False),
        ("app", "", False),
    ],
)
def test_it_checks_injection_credentials_against_the_node_settings(
    contract, make_policy, user, password, allowed
):
    contract.publish()
    standin = make_policy(TRUSTGATE_INJECT_USERNAME="app", TRUSTGATE_INJECT_PASSWORD="s3cret-pass")

    assert standin.fire("http_server_validate_auth_basic", user, password) is allowed


def test_it_refuses_basic_auth_when_no_password_is_configured(contract, make_policy):
    contract.publish()
    standin = make_policy()

    assert standin.fire("http_server_validate_auth_basic", "", "") is False
    assert standin.fire("http_server_validate_auth_basic", "", None) is False


# --- 7. Redis down -----------------------------------------------------------------------------


def test_it_keeps_routing_from_the_replica_when_the_primary_dies(
    contract, make_policy, redis_servers
):
    primary, replica = redis_servers(), redis_servers()
    replicate(replica, primary)
    platform = contract.on(primary)
    platform.publish(tenants=TENANTS | {"dom_unseen": "standard"})
    wait_replicated(replica, primary)
    standin = make_policy(redis_url=primary.url, TRUSTGATE_REDIS_READ_URL=replica.url)
    receive(standin, tenant="dom_premium")
    assert queue_pool(standin, "dom_premium") == "premium"

    primary.kill()
    standin.clock.advance(60)
    standin.recycle()  # a fresh context: nothing known but what Redis says

    assert queue_pool(standin, "dom_premium") == "premium"
    assert queue_pool(standin, "dom_unseen") == "standard"  # never looked up before the outage
    assert queue_pool(standin, "dom_quarantined") == "quarantine"
    receive(standin, tenant="dom_unseen")
    with pytest.raises(Rejected, match="quarantined"):
        receive(standin, tenant="dom_quarantined")
    premium = to_python(standin.fire("get_egress_pool", "premium"))
    assert [entry["name"] for entry in premium["entries"]] == ["ip-1", "ip-2"]
    assert to_python(standin.fire("get_egress_source", "ip-4"))["source_address"] == "192.0.2.4"
    # Writes need the primary: the re-send check is skipped (and says so), mail still flows.
    assert any("without the re-send check" in log["text"] for log in standin.logs)
    [throttles] = standin.configured("configure_redis_throttles")
    assert throttles["node"] == primary.url


def test_it_falls_back_safely_when_redis_is_gone_across_a_context_recycle(
    contract, make_policy, redis_servers
):
    server = redis_servers()
    platform = contract.on(server)
    platform.publish(tenants=TENANTS | {"dom_promoted": "rehab", "dom_unseen": "standard"})
    standin = make_policy(redis_url=server.url)
    for tenant in ("dom_premium", "dom_rehab", "dom_promoted"):
        receive(standin, tenant=tenant)
        assert queue_pool(standin, tenant) == TENANTS.get(tenant, "rehab")
    assert queue_pool(standin, "dom_quarantined") == "quarantine"
    standin.fire("get_egress_pool", "premium")
    standin.fire("get_egress_source", "ip-1")
    # Promoted after this node last looked, then Redis goes away.
    platform.set_pool("dom_promoted", "premium")
    server.kill()
    standin.clock.advance(60)

    # Within the same context, the last answers bridge the gap: never a better pool.
    assert queue_pool(standin, "dom_premium") == "premium"
    assert queue_pool(standin, "dom_promoted") == "rehab"
    assert queue_pool(standin, "dom_quarantined") == "quarantine"
    assert queue_pool(standin, "dom_unseen") == "quarantine"  # held: no pool is known
    receive(standin, tenant="dom_premium")
    with pytest.raises(Rejected) as unseen:
        receive(standin, tenant="dom_unseen")
    assert unseen.value.code == 451
    assert [e["name"] for e in to_python(standin.fire("get_egress_pool", "premium"))["entries"]]
    with pytest.raises(PolicyError, match="unavailable"):
        standin.fire("get_egress_pool", "standard")
    assert any("redis lookup" in log["text"] for log in standin.logs)

    # A failed lookup is cached for the TTL: a dead Redis is not asked once per message (only
    # the re-send check, which must not be cached, is).
    attempts = map_reads(standin)
    for _ in range(20):
        queue_pool(standin, "dom_premium")
        receive(standin, tenant="dom_premium")
    assert map_reads(standin) == attempts

    # A fresh context (kumod recycles them every few minutes) knows nothing: queued mail of
    # every tenant waits in the empty pool (never a better one than it had: a quarantined
    # tenant's mail must not leave from rehab), new mail is refused for a retry.
    standin.recycle()
    standin.clock.advance(60)
    for tenant in ("dom_premium", "dom_promoted", "dom_unseen", "dom_quarantined"):
        assert queue_pool(standin, tenant) == "quarantine"
        with pytest.raises(Rejected) as refused:
            receive(standin, tenant=tenant)
        assert refused.value.code == 451
    with pytest.raises(PolicyError, match="unavailable"):
        standin.fire("get_egress_pool", "premium")
    # The pool that holds them needs no Redis: the queues routed to it really wait.
    before = standin.redis_call_count
    held = to_python(standin.fire("get_egress_pool", "quarantine"))
    assert held["name"] == "quarantine"
    assert not held["entries"]
    assert standin.redis_call_count == before


def map_reads(standin: KumoStandin) -> int:
    """Redis queries for the map (the re-send check's GET and SET are per message)."""
    return standin.redis_call_count - standin.redis_calls["GET"] - standin.redis_calls["SET"]


def test_it_reads_the_settings_hash_over_resp3(contract, make_policy):
    contract.publish(
        settings={"pool_ttl": "2 minutes", "shaping": {"google": {"max_connections": 7}}}
    )
    standin = make_policy(TRUSTGATE_REDIS_READ_URL=f"{contract.url}?protocol=resp3")

    assert to_python(standin.fire("get_egress_pool", "premium"))["ttl"] == "2 minutes"
    assert path_config(standin, "gmail.com", "gmail-smtp-in.l.google.com")["connection_limit"] == 7


# --- 8. log hook -------------------------------------------------------------------------------

RECORDS = [
    {
        "type": "Delivery",
        "id": f"spool-{n}",
        "recipient": f"r{n}@example.org",
        "meta": {
            "tenant": "dom_premium",
            "campaign": "cmp_1",
            "kind": "campaign",
            "message_id": f"{n}@brand.example",
        },
        "response": {"code": 250, "content": "OK"},
    }
    for n in range(3)
]


def test_it_posts_log_batches_with_the_bearer_token(contract, make_policy, hook_server):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(hook_server), TRUSTGATE_HOOK_BATCH_SIZE="2")

    dispositions = standin.deliver_log_records(RECORDS)

    assert [d.split()[0] for d in dispositions] == ["200", "200"]
    assert len(hook_server.received) == 2
    first, second = hook_server.received
    assert first["path"] == "/hooks/kumomta/"
    assert first["headers"]["Authorization"] == f"Bearer {HOOK_TOKEN}"
    assert first["headers"]["Content-Type"] == "application/json"
    assert json.loads(first["body"]) == RECORDS[:2]
    assert json.loads(second["body"]) == RECORDS[2:]
    [hook] = standin.configured("configure_log_hook")
    assert hook["name"] == "trustgate"
    assert hook["meta"] == ["tenant", "campaign", "kind", "message_id"]


def test_it_posts_one_record_per_request_with_a_batch_size_of_one(
    contract, make_policy, hook_server
):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(hook_server), TRUSTGATE_HOOK_BATCH_SIZE="1")

    dispositions = standin.deliver_log_records(RECORDS[:2])

    assert len(dispositions) == 2
    assert [json.loads(r["body"]) for r in hook_server.received] == RECORDS[:2]


def test_it_batches_records_by_the_platform_default_without_a_node_setting(contract, make_policy):
    contract.publish()
    standin = make_policy()

    config = queue_config(standin, None, domain="trustgate.log_hook")

    assert config["protocol"]["custom_lua"]["batch_size"] == 500


@pytest.mark.parametrize(("status", "code"), [(503, 451), (500, 451), (429, 451), (400, 550)])
def test_it_retries_records_the_hook_could_not_take(
    contract, make_policy, hook_server, status, code
):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(hook_server))
    hook_server.status = status

    with pytest.raises(Rejected) as failed:
        standin.deliver_log_records(RECORDS[:1])

    assert failed.value.code == code
    assert str(status) in failed.value.message
    assert len(hook_server.received) == 1


def test_it_retries_records_when_the_hook_is_unreachable(contract, make_policy):
    contract.publish()
    standin = make_policy(TRUSTGATE_HOOK_URL=f"http://127.0.0.1:{free_port()}/hooks/kumomta/")

    with pytest.raises(Rejected) as failed:
        standin.deliver_log_records(RECORDS[:1])

    assert failed.value.code == 451
    assert "unreachable" in failed.value.message


def test_it_takes_the_hook_url_only_from_the_node(contract, make_policy, loopback_server):
    # Whoever can write the Redis settings must not be able to send the bearer token elsewhere.
    platform, rogue = loopback_server(), loopback_server()
    contract.publish(settings=SETTINGS | {"hook_url": hook_url(rogue)})
    standin = make_policy(TRUSTGATE_HOOK_URL=hook_url(platform))

    standin.deliver_log_records(RECORDS[:1])

    assert len(platform.received) == 1
    assert rogue.received == []


# --- 9. shaping --------------------------------------------------------------------------------

SHAPING = {
    "google": {"max_connections": 4, "messages_per_hour": 900, "mx_suffixes": [".google.com"]},
    "outlook": {
        "max_connections": 2,
        "messages_per_hour": 400,
        "max_deliveries_per_connection": 30,
        "mx_suffixes": [".olc.protection.outlook.com"],
    },
    "office365": {"max_connections": 3, "messages_per_hour": 500},
    "yahoo": {"max_connections": 1, "messages_per_hour": 250, "mx_suffixes": [".yahoodns.net"]},
    "default": {"max_connections": 6, "messages_per_hour": 1200},
}


def test_it_shapes_the_big_providers_with_numbers_from_redis(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": SHAPING})
    standin = make_policy()

    gmail = path_config(standin, "gmail.com", "(alt1)?.gmail-smtp-in.l.google.com")
    assert gmail["provider_name"] == "google"
    assert (gmail["connection_limit"], gmail["max_message_rate"]) == (4, "900/h")
    hosted = path_config(standin, "company.example", "(alt2)?.aspmx.l.google.com")
    assert hosted["max_message_rate"] == "900/h"
    outlook = path_config(standin, "hotmail.co.uk", "eur.olc.protection.outlook.com")
    assert (outlook["max_message_rate"], outlook["max_deliveries_per_connection"]) == ("400/h", 30)
    office = path_config(standin, "contoso.example", "contoso-example.mail.protection.outlook.com")
    assert (office["connection_limit"], office["max_message_rate"]) == (3, "500/h")
    yahoo = path_config(standin, "aol.com", "mx-aol.mail.gm0.yahoodns.net")
    assert yahoo["connection_limit"] == 1
    other = path_config(standin, "example.org", "mx.example.org")
    assert (other["connection_limit"], other["max_message_rate"]) == (6, "1200/h")
    assert other["refresh_strategy"] == "Epoch"


def test_it_recognises_a_provider_by_the_site_name_when_the_helper_did_not(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": SHAPING})
    # No MX answer for the domain (the helper matches nothing), but the site is Google's.
    standin = make_policy(mx={})

    gmail = path_config(standin, "gmail.com", "(alt1)?.gmail-smtp-in.l.google.com")

    assert "provider_name" not in gmail
    assert (gmail["connection_limit"], gmail["max_message_rate"]) == (4, "900/h")


def test_it_does_not_take_a_vanity_domain_for_a_provider(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": SHAPING})
    standin = make_policy()

    # One of its MX hosts is Google's, the other not: neither the helper nor the site matches.
    mixed = path_config(standin, "mixed.example", "aspmx.l.google.com,mx.backup.example")

    assert mixed["max_message_rate"] == "1200/h"


def test_it_falls_back_to_the_platform_defaults_without_settings(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": "not json"})
    standin = make_policy()

    gmail = path_config(standin, "googlemail.com", "gmail-smtp-in.l.google.com")
    other = path_config(standin, "example.org", "mx.example.org")

    assert (gmail["connection_limit"], gmail["max_message_rate"]) == (3, "300/h")
    assert (other["connection_limit"], other["max_message_rate"]) == (5, "1000/h")


def test_it_gives_the_log_hook_queue_its_own_path(contract, make_policy):
    contract.publish(settings=SETTINGS | {"shaping": SHAPING})
    standin = make_policy()

    hook = path_config(standin, "trustgate.log_hook", "trustgate.log_hook", source="unspecified")

    assert hook["connection_limit"] == "local:10"
    assert hook["max_deliveries_per_connection"] == 8192
    assert hook["max_ready"] == 10000
    assert "max_message_rate" not in hook
    assert "provider_name" not in hook


def test_it_publishes_to_the_tsa_daemon_and_reads_its_overrides(
    contract, make_policy, loopback_server
):
    tsa = loopback_server()
    tsa.routes["/get_config_v1/shaping.toml"] = b'[provider."yahoo"]\nmax_ready = 77\n'
    contract.publish(settings=SETTINGS | {"shaping": SHAPING})

    standin = make_policy(TRUSTGATE_TSA_URL=tsa.url + "/")

    hook_name = f"{tsa.url}.tsa.kumomta"
    assert hook_name in [hook["name"] for hook in standin.configured("configure_log_hook")]
    tasks = [task["event_name"] for task in standin.configured("spawn_task")]
    assert tasks == ["kumo.tsa.suspension.subscriber", "kumo.tsa.config.monitor"]
    # The TSA queue belongs to the shaping helper, not to a tenant.
    tsa_queue = queue_config(standin, None, domain=hook_name)
    assert tsa_queue["protocol"]["custom_lua"]["constructor"] == f"make.{hook_name}"
    # What the daemon serves is laid over the files; the platform's numbers over both.
    yahoo = path_config(standin, "aol.com", "mx-aol.mail.gm0.yahoodns.net")
    assert (yahoo["max_ready"], yahoo["connection_limit"]) == (77, 1)
    # Its own queue is not mail either.
    assert "max_message_rate" not in path_config(standin, hook_name, hook_name)


def test_it_does_not_publish_without_a_tsa_daemon(contract, make_policy):
    contract.publish()
    standin = make_policy()

    assert [hook["name"] for hook in standin.configured("configure_log_hook")] == ["trustgate"]
    assert standin.configured("spawn_task") == []


# --- 10. start-up and cost ---------------------------------------------------------------------


def test_it_configures_the_node_at_init(contract, make_policy):
    contract.publish()
    standin = make_policy(
        TRUSTGATE_RELAY_HOSTS="10.0.0.5, 10.0.0.6",
        TRUSTGATE_REDIS_READ_URL="redis://127.0.0.1:6380/0",
    )

    [classifier] = standin.configured("configure_bounce_classifier")
    assert classifier["files"][0].endswith("iana.toml")
    [throttles] = standin.configured("configure_redis_throttles")
    assert throttles["node"] == contract.url  # the primary, not the replica
    [listener] = standin.configured("start_esmtp_listener")
    assert listener["relay_hosts"] == ["10.0.0.5", "10.0.0.6"]
    assert listener["trace_headers"] == {"supplemental_header": False}
    [logs] = standin.configured("configure_local_logs")
    assert logs["meta"] == ["tenant", "campaign", "kind", "message_id"]
    assert len(standin.configured("define_spool")) == 2
    assert standin.configured("start_http_listener")


def test_it_makes_about_one_redis_read_per_tenant_per_ttl():
    tenants = 100

    calls = redis_calls_for(2_000, tenants)

    assert calls <= 2 * tenants + 5
    assert redis_calls_for(500, tenants, memoize=False) >= 500
