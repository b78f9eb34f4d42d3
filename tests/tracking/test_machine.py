"""Machine-open rules (pure): proxies, scanners and instant opens are machines."""

from hypothesis import given
from hypothesis import strategies as st

from tracking.machine import FAST_OPEN_SECONDS, is_machine_open, open_verdict

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)


def test_it_flags_known_proxies_and_scanners():
    assert open_verdict(user_agent=GMAIL_PROXY, seconds_since_delivery=600).reason == (
        "Google image proxy"
    )
    assert is_machine_open("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy", 900)
    assert is_machine_open("Mozilla/5.0", 3600)  # Apple Mail Privacy Protection's bare agent
    assert is_machine_open("Barracuda Sentinel (EE)", 100)
    assert is_machine_open("python-requests/2.31", 100)
    assert is_machine_open("", 100)
    assert open_verdict(user_agent=IPHONE, seconds_since_delivery=600, ip="17.58.1.2").reason == (
        "Apple Mail Privacy Protection"
    )


def test_it_takes_a_late_open_from_a_mail_app_as_a_person():
    assert not is_machine_open(IPHONE, 600)
    assert not is_machine_open(IPHONE, 600, "203.0.113.9")
    assert not is_machine_open(IPHONE, None)  # delivery time unknown: the agent decides


def test_an_open_from_a_proxy_within_two_seconds_is_a_machine():
    verdict = open_verdict(user_agent=GMAIL_PROXY, seconds_since_delivery=1.2)
    assert verdict.machine


@given(seconds=st.floats(min_value=-1e6, max_value=FAST_OPEN_SECONDS, exclude_max=True))
def test_any_open_within_two_seconds_of_delivery_is_a_machine(seconds):
    assert is_machine_open(IPHONE, seconds)


@given(
    agent=st.text(max_size=200),
    seconds=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    ip=st.one_of(st.none(), st.text(max_size=40), st.ip_addresses().map(str)),
)
def test_the_verdict_is_total_and_a_machine_verdict_has_a_reason(agent, seconds, ip):
    verdict = open_verdict(user_agent=agent, seconds_since_delivery=seconds, ip=ip)
    assert verdict.machine == bool(verdict.reason)


@given(
    agent=st.sampled_from([GMAIL_PROXY, "Mimecast", "curl/8.0", "Mozilla/5.0"]),
    seconds=st.floats(min_value=0, max_value=1e7),
)
def test_a_known_machine_agent_is_a_machine_however_late(agent, seconds):
    assert is_machine_open(agent, seconds)


def test_the_module_imports_no_django():
    import ast
    import inspect

    import tracking.machine as module

    tree = ast.parse(inspect.getsource(module))
    names = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [node])
        if isinstance(alias, ast.alias)
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert not names & {"django", "celery", "redis", "config", "sending", "campaigns"}
