"""Traceable requests: an X-Request-ID on every answer, and one id from the click to the
receipt email in the web's, the worker's and the Stripe calls' log lines."""

from __future__ import annotations

import json
import logging
import re

import pytest

from payments_site.logging_filters import JsonFormatter, PlainFormatter, redact_record
from payments_site.services import emails

HEX_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(("path", "status"), [("/", 200), ("/healthz", 200),
                                              ("/no/such/page", 404),
                                              ("/api/payments/history", 401)])
def test_every_answer_carries_a_request_id(client, path, status):
    first, second = client.get(path), client.get(path)
    assert first.status_code == status
    ids = [first.headers.get("X-Request-ID"), second.headers.get("X-Request-ID")]
    assert all(i and HEX_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]


def test_an_incoming_id_is_ignored_unless_trusted(app, client):
    sent = "lb-3f1c2a9e-7d4b-4c1e-9a55-0e2b7c1d9f00"
    app.config["TRUST_REQUEST_ID"] = False
    assert client.get("/", headers={"X-Request-ID": sent}).headers["X-Request-ID"] != sent
    app.config["TRUST_REQUEST_ID"] = True
    assert client.get("/", headers={"X-Request-ID": sent}).headers["X-Request-ID"] == sent


@pytest.mark.parametrize("bad", ["short", "has space in it", "a" * 129, "<script>alert1</script>",
                                 "id\u00e9with-accent", "-starts-with-dash", "x;drop=table"])
def test_a_trusted_id_of_the_wrong_shape_is_replaced(app, client, bad):
    app.config["TRUST_REQUEST_ID"] = True
    answered = client.get("/", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
    assert answered != bad and HEX_ID.fullmatch(answered)


def test_a_line_break_in_the_incoming_id_never_reaches_a_log_line(app, client, caplog):
    app.config["TRUST_REQUEST_ID"] = True
    caplog.set_level(logging.INFO)
    response = client.get("/", environ_base={"HTTP_X_REQUEST_ID": "abcdefgh\nforged line"})
    assert HEX_ID.fullmatch(response.headers["X-Request-ID"])
    assert all("forged line" not in str(getattr(r, "request_id", "")) for r in caplog.records)


def _records_with(caplog, request_id):
    return [r for r in caplog.records if getattr(r, "request_id", None) == request_id]


def test_one_request_id_follows_a_checkout_to_its_receipt_email(
        shopper, customer, mug, make_card, run_jobs, mail_sink, caplog):
    pm_id = make_card(customer)
    caplog.set_level(logging.INFO)
    response = shopper.post("/api/payments/process", json={
        "items": [{"product_id": mug.id, "quantity": 1}], "payment_method_id": pm_id})
    assert response.status_code == 201, response.get_json()
    request_id = response.headers["X-Request-ID"]
    payment_id = response.get_json()["payment"]["id"]

    web = _records_with(caplog, request_id)
    created = [r for r in web if r.getMessage().startswith(f"payment {payment_id} created")]
    assert len(created) == 1
    assert created[0].user_id == customer.id and created[0].payment_id == payment_id
    # Each Stripe call's line names Stripe's own request id beside ours.
    stripe_lines = [r.getMessage() for r in web if r.name == "payments_site.stripe_gateway"]
    assert any(m.startswith("stripe payment_intents.create ok") for m in stripe_lines)
    assert any(m.startswith("stripe payment_intents.confirm ok") for m in stripe_lines)
    assert all(re.search(r"stripe_request_id=req_\w+", m) for m in stripe_lines), stripe_lines

    caplog.clear()
    run_jobs()
    assert len(mail_sink.wait_for(1)) == 1
    traced = _records_with(caplog, request_id)
    receipt_lines = [r for r in traced if r.name == "payments_site.services.receipts"
                     and r.getMessage().startswith("issued receipt")]
    email_lines = [r for r in traced if r.name == "payments_site.services.emails"
                   and r.getMessage().startswith("sent email")]
    assert len(receipt_lines) == 1 and len(email_lines) == 1
    assert receipt_lines[0].payment_id == payment_id
    assert email_lines[0].payment_id == payment_id
    # The same id as JSON (LOG_FORMAT=json) and as plain text (the dev default).
    entry = json.loads(JsonFormatter().format(email_lines[0]))
    assert entry["request_id"] == request_id and entry["payment_id"] == payment_id
    assert entry["level"] == "INFO" and entry["message"].startswith("sent email")
    assert PlainFormatter().format(email_lines[0]).endswith(f"[request_id={request_id}]")


def test_jobs_queued_outside_a_request_carry_no_request_id(app, run_jobs, caplog):
    caplog.set_level(logging.INFO)
    emails.send_later(dedupe_key="ops:1", kind="dispute", to="ops@example.com",
                      subject="Dispute opened", text_body="A dispute was opened.")
    run_jobs()
    sent = [r for r in caplog.records if r.getMessage().startswith("sent email")]
    assert len(sent) == 1 and sent[0].request_id is None


def test_json_lines_are_redacted_and_one_object_per_line():
    record = logging.LogRecord("payments_site.test", logging.WARNING, __file__, 1,
                               "card %s\nsecond line", ("4242 4242 4242 4242",), None)
    text = JsonFormatter().format(redact_record(record))
    assert "\n" not in text
    entry = json.loads(text)
    assert "4242 4242" not in entry["message"] and "[card]" in entry["message"]
    assert entry["logger"] == "payments_site.test" and entry["time"].endswith("Z")
