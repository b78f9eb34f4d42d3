"""The Traffic Shaping Automation daemon's suspensions in the console's pool overview."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reputation.tsa import BOUNCED_PATH, SUSPENDED_PATH, tsa_actions

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


@given(json_values, json_values)
def test_whatever_the_daemon_answers_reading_it_never_raises(suspended, bounced):
    for action in tsa_actions(suspended, bounced):
        assert action.kind in {"path suspended", "tenant suspended", "tenant bounced"}


def test_it_reads_both_documents_as_the_daemon_writes_them():
    actions = tsa_actions(
        {
            "ready_q": [
                {
                    "rule_hash": "abc",
                    "site_name": "mta5.am0.yahoodns.net",
                    "reason": "automation rule: \\[TS04\\]",
                    "source": "ip-a",
                    "expires": "2026-11-30T14:00:00Z",
                }
            ],
            "sched_q": [
                {
                    "rule_hash": "def",
                    "tenant": "dom_victim",
                    "domain": "outlook.com",
                    "campaign": None,
                    "reason": "automation rule: throttled",
                    "expires": "not a date",
                }
            ],
        },
        [
            {
                "rule_hash": "x",
                "domain": "gmail.com",
                "tenant": None,
                "campaign": "c1",
                "reason": "bounce rule",
                "expires": "2026-12-01T00:00:00+00:00",
            }
        ],
    )
    assert [(a.kind, a.scope) for a in actions] == [
        ("path suspended", "ip-a -> mta5.am0.yahoodns.net"),
        ("tenant suspended", "dom_victim @ outlook.com"),
        ("tenant bounced", "any tenant @ gmail.com (campaign c1)"),
    ]
    assert actions[0].expires.hour == 14 and actions[1].expires is None
    assert actions[1].tenant == "dom_victim"


@pytest.fixture
def tsa_daemon(settings) -> Iterator[dict]:
    documents = {SUSPENDED_PATH: {"ready_q": [], "sched_q": []}, BOUNCED_PATH: []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_GET(self):
            if self.path not in documents:
                self.send_error(404)
                return
            body = json.dumps(documents[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.KUMO_TSA_URL = f"http://127.0.0.1:{server.server_address[1]}"
    yield documents
    server.shutdown()
    server.server_close()


def test_the_pool_overview_shows_active_suspensions_with_the_tenants_domain(
    tsa_daemon, staff_client, verified_domain
):
    assert "No active suspensions" in staff_client.get("/admin/reputation/pool/").content.decode()
    tsa_daemon[SUSPENDED_PATH]["sched_q"].append(
        {
            "rule_hash": "h",
            "tenant": verified_domain.public_id,
            "domain": "yahoo.com",
            "campaign": None,
            "reason": "automation rule: TS04",
            "expires": "2026-11-30T16:00:00Z",
        }
    )
    body = staff_client.get("/admin/reputation/pool/").content.decode()
    assert "tenant suspended" in body and "automation rule: TS04" in body
    assert verified_domain.name in body


def test_a_daemon_that_cannot_be_read_is_said_so_and_the_page_still_works(settings, staff_client):
    settings.KUMO_TSA_URL = "http://127.0.0.1:9"
    response = staff_client.get("/admin/reputation/pool/")
    assert response.status_code == 200
    assert "could not be read" in response.content.decode()
    settings.KUMO_TSA_URL = ""
    assert (
        "No TSA daemon is configured"
        in staff_client.get("/admin/reputation/pool/").content.decode()
    )
