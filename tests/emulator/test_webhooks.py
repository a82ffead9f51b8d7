"""Webhooks: signed deliveries, event types, retries, duplicates, shuffling, events API."""

from __future__ import annotations

import json
import time

import pytest
import requests
import stripe

from tests.emulator.helpers import WEBHOOK_SECRET, WebhookReceiver, card, client


def _verify(delivery: dict) -> stripe.Event:
    return stripe.Webhook.construct_event(delivery["body"].decode(), delivery["signature"],
                                          WEBHOOK_SECRET)


def test_signed_delivery_verifies_with_sdk(emulator, sc: stripe.StripeClient,
                                           receiver: WebhookReceiver) -> None:
    """Deliveries carry a Stripe-Signature the SDK verifies; a wrong secret fails.

    https://docs.stripe.com/webhooks#verify-events
    """
    receiver.register(emulator.url)
    pi = sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4242424242424242").id})
    receiver.wait_for(lambda evs: "payment_intent.succeeded" in [e["type"] for e in evs])
    delivery = next(d for d in receiver.deliveries
                    if json.loads(d["body"])["type"] == "payment_intent.succeeded")
    event = _verify(delivery)
    assert event.type == "payment_intent.succeeded"
    assert event.data.object.id == pi.id and event.data.object.status == "succeeded"
    assert event.id.startswith("evt_") and event.object == "event"
    assert event.livemode is False and event.api_version and event.created
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery["body"].decode(), delivery["signature"],
                                       "whsec_wrong")


def test_event_types_for_payment_flow(emulator, sc: stripe.StripeClient,
                                      receiver: WebhookReceiver) -> None:
    """A payment, a decline, a refund, a dispute and a saved card emit Stripe's event types.

    https://docs.stripe.com/api/events/types
    """
    receiver.register(emulator.url)
    cus = sc.v1.customers.create()
    paid = sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "confirm": True, "customer": cus.id,
        "setup_future_usage": "off_session", "payment_method": card(sc, "4242424242424242").id})
    with pytest.raises(stripe.CardError):
        sc.v1.payment_intents.create(params={
            "amount": 1000, "currency": "usd", "confirm": True,
            "payment_method": card(sc, "4000000000000002").id})
    sc.v1.refunds.create(params={"payment_intent": paid.id, "amount": 100})
    sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000000000000259").id})
    sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000002500003155").id})
    cancel_me = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    sc.v1.payment_intents.cancel(cancel_me.id)
    si = sc.v1.setup_intents.create(params={"customer": cus.id, "confirm": True,
                                            "payment_method": "pm_card_visa"})
    sc.v1.payment_methods.detach(si.payment_method)
    sc.v1.payment_intents.create(params={  # SEPA Direct Debit: processing first
        "amount": 1000, "currency": "eur", "confirm": True, "payment_method": "pm_success_de"})
    expected = {"payment_intent.created", "payment_intent.succeeded",
                "payment_intent.payment_failed", "payment_intent.requires_action",
                "payment_intent.canceled", "payment_intent.processing", "charge.succeeded",
                "charge.failed", "charge.pending", "charge.refunded", "refund.created",
                "charge.dispute.created", "setup_intent.succeeded", "payment_method.attached",
                "payment_method.detached"}
    events = receiver.wait_for(lambda evs: expected <= {e["type"] for e in evs})
    dispute = next(e for e in events if e["type"] == "charge.dispute.created")["data"]["object"]
    assert dispute["object"] == "dispute" and dispute["reason"] == "fraudulent"
    assert dispute["evidence_details"]["due_by"] > dispute["created"]
    assert dispute["charge"].startswith("ch_") and dispute["payment_intent"].startswith("pi_")
    assert dispute["amount"] == 1000
    assert sc.v1.charges.retrieve(dispute["charge"]).disputed is True
    failed = next(e for e in events if e["type"] == "payment_intent.payment_failed")
    assert failed["data"]["object"]["last_payment_error"]["decline_code"] == "generic_decline"


def _all_verified(receiver: WebhookReceiver) -> list[stripe.Event]:
    """Every accepted delivery, each checked with the SDK's signature verification."""
    return [_verify(d) for d in receiver.deliveries if d["status"] == 200]


def test_sepa_debit_processing_then_succeeded_webhooks(emulator, sc: stripe.StripeClient,
                                                       receiver: WebhookReceiver) -> None:
    """A SEPA Direct Debit (DE89370400440532013000) emits payment_intent.processing when it is
    confirmed, and payment_intent.succeeded (with charge.succeeded) only after the delay.

    https://docs.stripe.com/testing#sepa-direct-debit and
    https://docs.stripe.com/payments/sepa-debit/accept-a-payment#web-confirm-paymentintent-succeeded
    ("payment_intent.processing" … "payment_intent.succeeded")
    """
    receiver.register(emulator.url)
    pm = sc.v1.payment_methods.create(params={"type": "sepa_debit",
                                              "sepa_debit": {"iban": "DE89370400440532013000"}})
    pi = sc.v1.payment_intents.create(params={
        "amount": 2500, "currency": "eur", "allowed_payment_method_types": ["sepa_debit"],
        "payment_method": pm.id, "confirm": True})
    assert pi.status == "processing"
    receiver.wait_for(lambda evs: "payment_intent.succeeded" in [e["type"] for e in evs])
    events = _all_verified(receiver)
    of_pi = [e for e in events if e.data.object.id == pi.id]
    assert [e.type for e in of_pi] == ["payment_intent.created", "payment_intent.processing",
                                       "payment_intent.succeeded"]
    assert [e.data.object.status for e in of_pi] == ["requires_confirmation", "processing",
                                                     "succeeded"]
    of_charge = [e for e in events if e.data.object.id == pi.latest_charge]
    assert [(e.type, e.data.object.status) for e in of_charge] == [
        ("charge.pending", "pending"), ("charge.succeeded", "succeeded")]
    types = [e.type for e in events]
    assert types.index("payment_intent.processing") < types.index("charge.succeeded")
    assert "payment_intent.payment_failed" not in types
    # The final events come after the processing delay, not with the confirm's answer.
    at = {json.loads(d["body"])["type"]: d["at"] for d in receiver.deliveries}
    assert at["payment_intent.succeeded"] - at["payment_intent.processing"] > 0.5


def test_sepa_debit_processing_then_failed_webhooks(emulator, sc: stripe.StripeClient,
                                                    receiver: WebhookReceiver) -> None:
    """DE62370400440532013001: payment_intent.processing, then charge.failed and
    payment_intent.payment_failed carrying last_payment_error (status
    requires_payment_method).

    https://docs.stripe.com/testing#sepa-direct-debit and
    https://docs.stripe.com/payments/sepa-debit/accept-a-payment (payment_intent.payment_failed)
    """
    receiver.register(emulator.url, events=["payment_intent.processing",
                                            "payment_intent.succeeded",
                                            "payment_intent.payment_failed",
                                            "charge.succeeded", "charge.failed"])
    pm = sc.v1.payment_methods.create(params={"type": "sepa_debit",
                                              "sepa_debit": {"iban": "DE62370400440532013001"}})
    pi = sc.v1.payment_intents.create(params={
        "amount": 2500, "currency": "eur", "automatic_payment_methods": {"enabled": True},
        "payment_method": pm.id, "confirm": True})
    assert pi.status == "processing"
    receiver.wait_for(lambda evs: "payment_intent.payment_failed" in [e["type"] for e in evs])
    events = _all_verified(receiver)
    assert [e.type for e in events] == ["payment_intent.processing", "charge.failed",
                                        "payment_intent.payment_failed"]
    failed = events[-1].data.object
    assert failed.id == pi.id and failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "payment_intent_payment_attempt_failed"
    assert failed.last_payment_error.payment_method.id == pm.id
    assert events[1].data.object.status == "failed"
    assert events[1].data.object.failure_code == "payment_intent_payment_attempt_failed"


def test_refund_pending_then_succeeded_webhooks(emulator, sc: stripe.StripeClient,
                                                receiver: WebhookReceiver) -> None:
    """4000000000007726: the refund is created `pending`, and a little later refund.updated
    and charge.refund.updated carry it `succeeded`.

    https://docs.stripe.com/testing#refunds and
    https://docs.stripe.com/api/events/types#event_types-charge.refund.updated
    """
    receiver.register(emulator.url)
    pi = sc.v1.payment_intents.create(params={
        "amount": 3000, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000000000007726").id})
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "pending"
    receiver.wait_for(lambda evs: "charge.refund.updated" in [e["type"] for e in evs])
    events = [e for e in _all_verified(receiver)
              if e.type.startswith(("refund.", "charge.refund."))]
    assert [(e.type, e.data.object.status) for e in events] == [
        ("refund.created", "pending"), ("refund.updated", "succeeded"),
        ("charge.refund.updated", "succeeded")]
    assert {e.data.object.id for e in events} == {refund.id}
    assert all(e.data.object.object == "refund" for e in events)
    assert "charge.refunded" in receiver.types()
    assert sc.v1.refunds.retrieve(refund.id).status == "succeeded"


def test_refund_fails_after_succeeding_webhooks(emulator, sc: stripe.StripeClient,
                                                receiver: WebhookReceiver) -> None:
    """4000000000005126: the refund is `succeeded` at first, then refund.updated,
    charge.refund.updated and refund.failed carry it `failed` with a failure_reason; the
    amount is refundable again.

    https://docs.stripe.com/testing#refunds and
    https://docs.stripe.com/refunds#failed-refunds
    """
    receiver.register(emulator.url)
    pi = sc.v1.payment_intents.create(params={
        "amount": 3000, "currency": "usd", "confirm": True,
        "payment_method": card(sc, "4000000000005126").id})
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "succeeded"
    receiver.wait_for(lambda evs: "refund.failed" in [e["type"] for e in evs])
    events = [e for e in _all_verified(receiver)
              if e.type.startswith(("refund.", "charge.refund."))]
    assert [(e.type, e.data.object.status) for e in events] == [
        ("refund.created", "succeeded"), ("refund.updated", "failed"),
        ("charge.refund.updated", "failed"), ("refund.failed", "failed")]
    assert events[-1].data.object.failure_reason
    assert sc.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0


def test_refund_metadata_update_emits_refund_updated(emulator, sc: stripe.StripeClient,
                                                     receiver: WebhookReceiver) -> None:
    """Updating a refund's metadata emits refund.updated with the new metadata.

    https://docs.stripe.com/api/refunds/update and
    https://docs.stripe.com/api/events/types#event_types-refund.updated
    """
    receiver.register(emulator.url, events=["refund.updated"])
    pi = sc.v1.payment_intents.create(params={
        "amount": 3000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa"})
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id})
    sc.v1.refunds.update(refund.id, params={"metadata": {"ticket": "T-9"}})
    events = receiver.wait_for(lambda evs: len(evs) >= 1)
    assert [e["type"] for e in events] == ["refund.updated"]
    assert events[0]["data"]["object"]["metadata"] == {"ticket": "T-9"}
    assert events[0]["data"]["object"]["status"] == "succeeded"


def test_setup_failed_event(emulator, sc: stripe.StripeClient,
                            receiver: WebhookReceiver) -> None:
    """A declined setup emits setup_intent.setup_failed with last_setup_error.

    https://docs.stripe.com/api/events/types#event_types-setup_intent.setup_failed
    """
    receiver.register(emulator.url, events=["setup_intent.setup_failed"])
    with pytest.raises(stripe.CardError):
        sc.v1.setup_intents.create(params={"confirm": True,
                                           "payment_method": "pm_card_visa_chargeDeclined"})
    events = receiver.wait_for(lambda evs: len(evs) >= 1)
    assert [e["type"] for e in events] == ["setup_intent.setup_failed"]  # filtered
    assert events[0]["data"]["object"]["last_setup_error"]["code"] == "card_declined"


def test_failed_delivery_is_retried(emulator, sc: stripe.StripeClient) -> None:
    """A non-2xx answer is retried until the endpoint accepts it.

    https://docs.stripe.com/webhooks#retries
    """
    receiver = WebhookReceiver(fail_first=2)
    try:
        receiver.register(emulator.url, events=["customer.created"])
        cus = sc.v1.customers.create()
        events = receiver.wait_for(lambda evs: len(evs) == 1, timeout=5)
        assert events[0]["data"]["object"]["id"] == cus.id
        assert len(receiver.deliveries) == 3  # two failures, then success
        assert len({json.loads(d["body"])["id"] for d in receiver.deliveries}) == 1
    finally:
        receiver.close()


def test_duplicate_delivery(emulator, sc: stripe.StripeClient,
                            receiver: WebhookReceiver) -> None:
    """`duplicate: 3` delivers each event three times with the same event id (Stripe may
    deliver an event more than once).

    https://docs.stripe.com/webhooks#handle-duplicate-events
    """
    receiver.register(emulator.url, events=["customer.created"], duplicate=3)
    sc.v1.customers.create()
    events = receiver.wait_for(lambda evs: len(evs) >= 3)
    assert len(events) == 3 and len({e["id"] for e in events}) == 1


def test_shuffled_delivery(emulator, sc: stripe.StripeClient,
                           receiver: WebhookReceiver) -> None:
    """`shuffle: true` delivers the events of a short window in a random order (Stripe does
    not guarantee ordering).

    https://docs.stripe.com/webhooks#event-ordering
    """
    receiver.register(emulator.url, events=["customer.created"], shuffle=True,
                      shuffle_window_s=0.3)
    orders = []
    for _ in range(3):
        receiver.deliveries.clear()
        created = [sc.v1.customers.create().id for _ in range(8)]
        events = receiver.wait_for(lambda evs: len(evs) >= 8)
        delivered = [e["data"]["object"]["id"] for e in events]
        assert sorted(delivered) == sorted(created)
        orders.append(delivered != created)
    assert any(orders)  # 3 × 8! orders: in order every time is ~1e-14 likely


def test_events_api(emulator, sc: stripe.StripeClient) -> None:
    """GET /v1/events lists newest first and filters by type; GET /v1/events/{id} retrieves.

    https://docs.stripe.com/api/events/list
    """
    pi = sc.v1.payment_intents.create(params={
        "amount": 1000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa"})
    events = sc.v1.events.list(params={"type": "payment_intent.succeeded"}).data
    assert len(events) == 1 and events[0].data.object.id == pi.id
    assert sc.v1.events.retrieve(events[0].id).type == "payment_intent.succeeded"
    all_types = [e.type for e in sc.v1.events.list(params={"limit": 100}).data]
    assert all_types[0] == "payment_intent.succeeded"
    assert all_types[-1] == "payment_intent.created"
    with pytest.raises(stripe.InvalidRequestError):
        client(emulator.url).v1.events.retrieve("evt_missing")


@pytest.mark.parametrize("encoding", ["form", "form-indexed", "form-comma", "json"])
def test_webhook_config_form_or_json(emulator, sc: stripe.StripeClient,
                                     receiver: WebhookReceiver, encoding: str) -> None:
    """`POST /_config/webhooks/<name>` takes a form or a JSON body alike: url, secret, the
    events list and duplicate take effect (only the listed events arrive, each twice, signed
    with that secret).

    https://docs.stripe.com/webhooks#verify-events and
    https://docs.stripe.com/webhooks#handle-duplicate-events
    """
    wanted = ["customer.created", "customer.updated"]
    common = {"url": receiver.url, "secret": WEBHOOK_SECRET, "duplicate": "2"}
    target = f"{emulator.url}/_config/webhooks/enc"
    if encoding == "json":
        resp = requests.post(target, json={**common, "duplicate": 2, "events": wanted},
                             timeout=5)
    elif encoding == "form":  # events=a&events=b, as an HTML form or `requests` sends a list
        resp = requests.post(target, data={**common, "events": wanted}, timeout=5)
    elif encoding == "form-indexed":  # events[0]=a&events[1]=b, Stripe's own encoding
        resp = requests.post(target, data={**common, "events[0]": wanted[0],
                                           "events[1]": wanted[1]}, timeout=5)
    else:
        resp = requests.post(target, data={**common, "events": ",".join(wanted)}, timeout=5)
    assert resp.status_code == 200
    if encoding != "json":
        assert resp.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert resp.json()["events"] == wanted and resp.json()["duplicate"] == 2
    listed = requests.get(f"{emulator.url}/_config/webhooks", timeout=5).json()["endpoints"]
    assert [(e["name"], e["events"]) for e in listed] == [("enc", wanted)]
    cus = sc.v1.customers.create()
    sc.v1.customers.update(cus.id, params={"description": "x"})
    sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})  # not listed
    receiver.wait_for(lambda evs: len(evs) >= 4)
    time.sleep(0.3)  # nothing else should arrive
    events = _all_verified(receiver)
    assert sorted(e.type for e in events) == ["customer.created"] * 2 + ["customer.updated"] * 2


def test_bad_webhook_config(emulator) -> None:
    """The control route rejects a missing url/secret.

    https://docs.stripe.com/webhooks
    """
    resp = requests.post(f"{emulator.url}/_config/webhooks/x", json={"url": "nope"},
                         timeout=5)
    assert resp.status_code == 400
