"""The contract machinery can fail: removed fields, unknown params, missing fields, bad events
and wrong localstripe versions are each reported."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests
import stripe

from stripe_emulator import contract, localstripe_seam
from tests.emulator.helpers import SECRET_KEY, card
from tests.harness.services import CONTRACT_SCHEMAS, contract_failures, read_contract


@pytest.fixture(scope="module")
def checker() -> contract.Checker:
    return contract.load(CONTRACT_SCHEMAS)


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The emulator loads the schemas without this check (it takes seconds at each start)."""
    contract.load(CONTRACT_SCHEMAS, check_schemas=True)


def _intent(sc: stripe.StripeClient) -> dict[str, Any]:
    pm = card(sc, "4242424242424242")
    pi = sc.v1.payment_intents.create(params={"amount": 1500, "currency": "usd",
                                              "payment_method": pm.id, "confirm": True})
    return pi.to_dict(recursive=True)


def _check(checker: contract.Checker, method: str, path: str, body: Any) -> list[str]:
    checker.violations.clear()
    checker.check_response(method, path, 200, body, caller="secret", key="", request_id="r")
    return [e for v in checker.violations for e in v["errors"]]


def test_a_real_emulator_answer_passes(checker: contract.Checker, sc) -> None:
    assert _check(checker, "GET", "/v1/payment_intents/pi_x", _intent(sc)) == []


def test_a_removed_field_is_reported(checker: contract.Checker, sc) -> None:
    """`invoice` left the PaymentIntent in a past API version: returning it fails."""
    body = {**_intent(sc), "invoice": None}
    assert _check(checker, "GET", "/v1/payment_intents/pi_x", body) == [
        "(root): Additional properties are not allowed ('invoice' was unexpected)"]


def test_a_missing_current_field_is_reported(checker: contract.Checker, sc) -> None:
    body = _intent(sc)
    del body["excluded_payment_method_types"]
    errors = _check(checker, "GET", "/v1/payment_intents/pi_x", body)
    assert errors == ["(root): 'excluded_payment_method_types' is a required property"]


def test_a_wrong_type_deep_inside_is_reported(checker: contract.Checker, sc) -> None:
    pi = _intent(sc)
    charge = sc.v1.charges.retrieve(pi["latest_charge"]).to_dict(recursive=True)
    broken = copy.deepcopy(charge)
    broken["outcome"]["risk_score"] = "high"
    errors = _check(checker, "GET", "/v1/charges/ch_x", broken)
    assert len(errors) == 1 and errors[0].startswith("outcome")
    assert _check(checker, "GET", "/v1/charges/ch_x", charge) == []


def test_lists_and_events_are_checked(checker: contract.Checker, sc) -> None:
    pi = _intent(sc)
    page = {"object": "list", "data": [pi], "has_more": False, "url": "/v1/payment_intents"}
    assert _check(checker, "GET", "/v1/payment_intents", page) == []
    assert _check(checker, "GET", "/v1/payment_intents", {**page, "total_count": 1}) != []
    checker.violations.clear()
    event = {"id": "evt_1", "object": "event", "api_version": "2026-10-28.endive",
             "created": 1, "livemode": False, "pending_webhooks": 0, "type": "refund.created",
             "request": {"id": None, "idempotency_key": None},
             "data": {"object": {**pi, "object": "refund"}}}
    checker.check_event(event)
    assert checker.violations and checker.violations[0]["kind"] == "event"


def test_form_params_are_read_as_stripe_types(checker: contract.Checker) -> None:
    """Form strings are integers and booleans where the schema says so; unknown and wrongly
    typed parameters fail."""
    def request(params: dict[str, Any]) -> list[str]:
        checker.violations.clear()
        checker.check_request("POST", "/v1/payment_intents", params, status=200,
                              caller="secret", key="", request_id="r")
        return [e for v in checker.violations for e in v["errors"]]

    assert request({"amount": "1500", "currency": "usd", "confirm": "true",
                    "metadata": {"order": "7"}, "expand": ["latest_charge"]}) == []
    assert request({"amount": "1500", "currency": "usd", "bogus": "1"}) == [
        "(root): Additional properties are not allowed ('bogus' was unexpected)"]
    assert request({"amount": "lots", "currency": "usd"}) != []
    assert request({"currency": "usd"}) == ["(root): 'amount' is a required property"]


def test_the_emulator_reports_an_unknown_param_sent_with_the_apps_key(emulator) -> None:
    """End to end: a request Stripe would refuse is recorded by the running emulator; it
    fails the suite when the app's key sent it, and is left to the emulator's own tests (which
    send wrong inputs on purpose) otherwise, since the emulator refused it."""
    resp = requests.post(f"{emulator.url}/v1/refunds", data={"payment_intent": "pi_x",
                                                             "bogus": "1"},
                         headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=5)
    assert resp.status_code == 400
    report = read_contract(emulator.url)
    assert any(v["kind"] == "request" and v["where"] == "POST /v1/refunds"
               for v in report["violations"])
    assert contract_failures(report) == []
    strict = contract_failures(report, strict_keys=(SECRET_KEY,))
    assert strict[0].startswith("request POST /v1/refunds → 400")
    assert "'bogus' was unexpected" in strict[1]


def test_another_localstripe_version_refuses_to_start(monkeypatch) -> None:
    localstripe_seam.check_version()  # the pinned one is installed
    monkeypatch.setattr(localstripe_seam, "PINNED_VERSION", "0.0.1")
    with pytest.raises(localstripe_seam.WrongLocalstripe, match="needs localstripe 0.0.1"):
        localstripe_seam.check_version()
