"""What the emulator now does as Stripe documents it: saved 500s and in-flight keys, disputes
that refuse refunds, the 3DS and Radar test cards, Stripe's error details and event fields."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import requests
import stripe

from tests.emulator.helpers import SECRET_KEY, WebhookReceiver, card, client

PI = {"amount": 1500, "currency": "usd"}


def _fault(url: str, **fault: Any) -> None:
    requests.post(f"{url}/_config/faults", json=fault, timeout=5).raise_for_status()


def _post(url: str, path: str, data: dict[str, Any], key: str | None = None
          ) -> requests.Response:
    headers = {"Authorization": f"Bearer {SECRET_KEY}"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(url + path, data=data, headers=headers, timeout=10)


def _intents(sc: stripe.StripeClient) -> list[str]:
    return [p.id for p in sc.v1.payment_intents.list().data]


# --------------------------------------------------------------------------- idempotency


def test_500_after_the_request_took_effect_is_saved_and_replayed(emulator, sc) -> None:
    """A 500 answered after the endpoint ran is the key's saved result: every retry with that
    key gets the same 500 (Stripe-Should-Retry: false), for 24 hours; a new key starts over.

    https://docs.stripe.com/api/idempotent_requests
    """
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=500,
           after=True)
    first = _post(emulator.url, "/v1/payment_intents", PI, key="saved-500")
    assert first.status_code == 500 and first.json()["error"]["type"] == "api_error"
    assert first.headers["Stripe-Should-Retry"] == "false"
    assert len(_intents(sc)) == 1  # it took effect
    for _ in range(2):
        again = _post(emulator.url, "/v1/payment_intents", PI, key="saved-500")
        assert (again.status_code, again.content) == (500, first.content)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Stripe-Should-Retry"] == "false"
    assert len(_intents(sc)) == 1  # nothing new behind the replays
    with pytest.raises(stripe.APIError):  # the SDK sees the replayed 500 too
        sc.v1.payment_intents.create(params=PI,  # type: ignore[arg-type]
                                     options={"idempotency_key": "saved-500"})
    fresh = _post(emulator.url, "/v1/payment_intents", PI, key="new-attempt")
    assert fresh.status_code == 200 and len(_intents(sc)) == 2


def test_500_before_the_endpoint_ran_is_not_saved(emulator, sc) -> None:
    """A failure before the request reached the endpoint saves nothing: the retry with the
    same key does the work, once."""
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=503)
    assert _post(emulator.url, "/v1/payment_intents", PI, key="early").status_code == 503
    assert _intents(sc) == []
    retry = _post(emulator.url, "/v1/payment_intents", PI, key="early")
    assert retry.status_code == 200 and _intents(sc) == [retry.json()["id"]]


def test_validation_errors_are_not_saved(emulator) -> None:
    """A request refused for its parameters saves nothing: the key still works afterwards
    with the same (corrected in Stripe's sense: now valid) request."""
    bad = _post(emulator.url, "/v1/payment_intents", {"amount": 1500, "currency": "zzz"},
                key="fix-me")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "currency"
    assert "Idempotent-Replayed" not in bad.headers


def test_a_key_in_flight_gets_409_at_once(emulator, sc) -> None:
    """While the first request with a key is still running (an injected delay holds it), a
    second one with the same key is answered 409 idempotency_key_in_use at once; after the
    first finishes, the key replays its result."""
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=None,
           delay_s=1.5)
    results: dict[str, requests.Response] = {}
    first = threading.Thread(target=lambda: results.update(
        a=_post(emulator.url, "/v1/payment_intents", PI, key="busy")))
    first.start()
    time.sleep(0.4)
    started = time.monotonic()
    second = _post(emulator.url, "/v1/payment_intents", PI, key="busy")
    assert time.monotonic() - started < 1.0  # not queued behind the first
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert second.json()["error"]["type"] == "invalid_request_error"
    first.join()
    assert results["a"].status_code == 200
    third = _post(emulator.url, "/v1/payment_intents", PI, key="busy")
    assert third.json()["id"] == results["a"].json()["id"]
    assert third.headers["Idempotent-Replayed"] == "true"
    assert len(_intents(sc)) == 1


def test_same_key_other_body_is_refused(emulator) -> None:
    assert _post(emulator.url, "/v1/payment_intents", PI, key="k1").status_code == 200
    other = _post(emulator.url, "/v1/payment_intents", {**PI, "amount": 1600}, key="k1")
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("path", "param"), [
    ("/v1/payment_intents/pi_missing", "intent"),
    ("/v1/setup_intents/seti_missing", "intent"),
    ("/v1/payment_methods/pm_missing", "payment_method"),
    ("/v1/charges/ch_missing", "charge"),
    ("/v1/refunds/re_missing", "refund"),
    ("/v1/disputes/dp_missing", "dispute"),
    ("/v1/customers/cus_missing", "customer"),
])
def test_unknown_ids_name_stripes_param(emulator, path: str, param: str) -> None:
    """404 resource_missing names the path parameter as Stripe does, and links the log."""
    resp = requests.get(emulator.url + path, headers={"Authorization": f"Bearer {SECRET_KEY}"},
                        timeout=5)
    error = resp.json()["error"]
    assert resp.status_code == 404
    assert (error["code"], error["param"]) == ("resource_missing", param)
    assert error["request_log_url"].startswith("https://dashboard.stripe.com/test/logs/"
                                               + resp.headers["Request-Id"])


def test_wrong_inputs_are_refused(sc: stripe.StripeClient) -> None:
    """An unsupported currency, an unknown parameter, a parameter this API version removed."""
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1500, "currency": "zzz"})
    assert exc.value.param == "currency" and exc.value.http_status == 400
    for name in ("invoice", "payment_method_types"):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            sc.v1.payment_intents.create(params={**PI, name: ["card"]})  # type: ignore[misc]
        assert (exc.value.code, exc.value.param) == ("parameter_unknown", name)


# --------------------------------------------------------------------------- cards


def _confirm(sc: stripe.StripeClient, number: str, **extra: Any) -> stripe.PaymentIntent:
    pm = card(sc, number)
    return sc.v1.payment_intents.create(params={**PI, "payment_method": pm.id,  # type: ignore
                                                "confirm": True, **extra})


def test_radar_highest_risk_is_blocked(sc: stripe.StripeClient) -> None:
    """4000 0000 0000 4954: risk level highest, blocked by Radar's default rule.

    https://docs.stripe.com/radar/testing
    """
    with pytest.raises(stripe.CardError) as exc:
        _confirm(sc, "4000000000004954")
    assert (exc.value.code, exc.value.error.decline_code) == ("card_declined", "fraudulent")
    charge = sc.v1.charges.retrieve(exc.value.error.charge)
    assert charge.status == "failed"
    outcome = charge.outcome
    assert (outcome.type, outcome.risk_level, outcome.network_status) == \
        ("blocked", "highest", "not_sent_to_network")
    assert outcome.risk_score >= 75 and outcome.reason == "highest_risk_level"


def test_radar_elevated_risk_succeeds_with_its_risk_level(sc: stripe.StripeClient) -> None:
    """4000 0000 0000 9235: succeeds, with risk level elevated on the charge's outcome."""
    pi = _confirm(sc, "4000000000009235")
    assert pi.status == "succeeded"
    outcome = sc.v1.charges.retrieve(str(pi.latest_charge)).outcome
    assert (outcome.type, outcome.risk_level) == ("authorized", "elevated")
    assert 65 <= outcome.risk_score < 75


def test_velocity_limit_is_an_issuer_decline(sc: stripe.StripeClient) -> None:
    """4000 0000 0000 6975: card_declined with decline_code card_velocity_exceeded."""
    with pytest.raises(stripe.CardError) as exc:
        _confirm(sc, "4000000000006975")
    assert exc.value.error.decline_code == "card_velocity_exceeded"
    outcome = sc.v1.charges.retrieve(exc.value.error.charge).outcome
    assert (outcome.type, outcome.reason, outcome.risk_level) == \
        ("issuer_declined", "card_velocity_exceeded", "normal")


def test_normal_payment_outcome_and_card_details(sc: stripe.StripeClient) -> None:
    pi = _confirm(sc, "4242424242424242")
    charge = sc.v1.charges.retrieve(str(pi.latest_charge))
    assert (charge.outcome.type, charge.outcome.risk_level) == ("authorized", "normal")
    details = charge.payment_method_details.card
    assert details.amount_authorized == 1500 and details.authorization_code
    assert "amount_authorization" not in details.to_dict()


def test_already_set_up_card_asks_on_session_only(sc: stripe.StripeClient) -> None:
    """4000 0038 0000 0446: every on-session payment needs authentication; off-session
    payments go through as if the card had been set up.

    https://docs.stripe.com/testing#authentication-and-setup
    """
    on_session = _confirm(sc, "4000003800000446")
    assert on_session.status == "requires_action"
    assert on_session.next_action.type == "use_stripe_sdk"
    customer = sc.v1.customers.create()
    pm = card(sc, "4000003800000446")
    sc.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    off = sc.v1.payment_intents.create(params={**PI, "customer": customer.id,  # type: ignore
                                               "payment_method": pm.id, "confirm": True,
                                               "off_session": True})
    assert off.status == "succeeded"


# --------------------------------------------------------------------------- disputes, events


def _wait(predicate: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


def test_dispute_opens_automatically_and_refunds_are_refused(
        emulator, sc: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    """…0259: the dispute (dp_…) opens after the payment, on its own: its events carry a
    null request; the charge is marked disputed (charge.updated names what changed), the
    funds are withdrawn; refunding the charge is refused with charge_disputed.

    https://docs.stripe.com/testing#disputes, https://docs.stripe.com/api/events/object
    """
    receiver.register(emulator.url)
    pi = _confirm(sc, "4000000000000259")
    dispute = _wait(lambda: sc.v1.disputes.list().data)[0]
    assert dispute.id.startswith("dp_") and dispute.charge == pi.latest_charge
    assert dispute.is_charge_refundable is False
    events = receiver.wait_for(lambda ev: "charge.dispute.funds_withdrawn" in
                               [e["type"] for e in ev])
    by_type = {e["type"]: e for e in events}
    for name in ("charge.dispute.created", "charge.updated", "charge.dispute.funds_withdrawn"):
        assert by_type[name]["request"] == {"id": None, "idempotency_key": None}, name
    assert by_type["payment_intent.succeeded"]["request"]["id"] is not None
    assert by_type["charge.updated"]["data"]["previous_attributes"] == {"disputed": False}
    assert by_type["charge.dispute.funds_withdrawn"]["data"]["object"][
        "balance_transactions"][0]["amount"] == -1500
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.code == "charge_disputed" and exc.value.http_status == 400
    assert sc.v1.refunds.list(params={"payment_intent": pi.id}).data == []
    assert sc.v1.charges.retrieve(str(pi.latest_charge)).amount_refunded == 0


def test_updated_events_carry_previous_attributes(
        emulator, sc: stripe.StripeClient, receiver: WebhookReceiver) -> None:
    """A pending refund (…7726) settling: refund.updated names the status it had."""
    receiver.register(emulator.url)
    pi = _confirm(sc, "4000000000007726")
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "pending"
    events = receiver.wait_for(lambda ev: "refund.updated" in [e["type"] for e in ev])
    updated = next(e for e in events if e["type"] == "refund.updated")
    assert updated["data"]["object"]["status"] == "succeeded"
    assert updated["data"]["previous_attributes"] == {"status": "pending"}
    assert updated["request"] == {"id": None, "idempotency_key": None}
    pm = card(sc, "4242424242424242")
    sc.v1.payment_methods.update(pm.id, params={"metadata": {"tier": "gold"}})
    events = receiver.wait_for(lambda ev: "payment_method.updated" in
                               [e["type"] for e in ev])
    pm_event = next(e for e in events if e["type"] == "payment_method.updated")
    assert pm_event["data"]["previous_attributes"] == {"metadata": {}}
    assert pm_event["request"]["id"] is not None


def test_lists_carry_no_total_count(sc: stripe.StripeClient) -> None:
    sc.v1.payment_intents.create(params=PI)  # type: ignore[arg-type]
    page = sc.v1.payment_intents.list()
    assert set(page.to_dict()) == {"object", "data", "has_more", "url"}


def test_sdk_retry_stops_on_should_retry_false(emulator) -> None:
    """The official SDK honours Stripe-Should-Retry: false: one attempt, not three."""
    sc = client(emulator.url, retries=2)
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=500,
           after=True, times=3)
    with pytest.raises(stripe.APIError):
        sc.v1.payment_intents.create(params=PI)  # type: ignore[arg-type]
    faults = requests.get(f"{emulator.url}/_config/faults", timeout=5).json()["faults"]
    assert faults[0]["times"] == 2  # only one of the three was used


def test_lost_answers_hit_replays_too(emulator, sc) -> None:
    """A dropped connection can lose a replay's answer as well; the saved result stays and the
    next retry with the key gets it."""
    _fault(emulator.url, method="POST", path_prefix="/v1/payment_intents", status=0,
           after=True, times=2)
    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            _post(emulator.url, "/v1/payment_intents", PI, key="lost-twice")
    answer = _post(emulator.url, "/v1/payment_intents", PI, key="lost-twice")
    assert answer.status_code == 200 and answer.headers["Idempotent-Replayed"] == "true"
    assert _intents(sc) == [answer.json()["id"]]
