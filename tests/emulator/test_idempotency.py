"""Idempotency-Key: replays, conflicts, per-key scoping and concurrent retries."""

from __future__ import annotations

import threading

import pytest
import requests
import stripe

from tests.emulator.helpers import SECRET_KEY, card


def test_same_key_same_params_replays(sc: stripe.StripeClient, emulator) -> None:
    """The same key and parameters return the first response (same id), marked replayed.

    https://docs.stripe.com/api/idempotent_requests
    """
    params = {"amount": 1000, "currency": "usd"}
    first = sc.v1.payment_intents.create(params=params,  # type: ignore[arg-type]
                                         options={"idempotency_key": "order-1"})
    second = sc.v1.payment_intents.create(params=params,  # type: ignore[arg-type]
                                          options={"idempotency_key": "order-1"})
    assert first.id == second.id
    assert second.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(sc.v1.payment_intents.list().data) == 1


def test_same_key_different_params_is_idempotency_error(sc: stripe.StripeClient) -> None:
    """Reusing a key with other parameters → 400 idempotency_error.

    https://docs.stripe.com/api/idempotent_requests
    """
    sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"},
                                 options={"idempotency_key": "order-2"})
    with pytest.raises(stripe.IdempotencyError) as exc:
        sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"},
                                     options={"idempotency_key": "order-2"})
    assert exc.value.http_status == 400
    assert exc.value.error.type == "idempotency_error"


def test_keys_scoped_per_api_key(emulator) -> None:
    """Keys belong to one API key: another account's key with the same value is independent.

    https://docs.stripe.com/api/idempotent_requests
    """
    def create(api_key: str) -> str:
        resp = requests.post(f"{emulator.url}/v1/payment_intents",
                             data={"amount": 500, "currency": "usd"},
                             headers={"Authorization": f"Bearer {api_key}",
                                      "Idempotency-Key": "shared"}, timeout=5)
        assert resp.status_code == 200
        return str(resp.json()["id"])

    assert create(SECRET_KEY) == create(SECRET_KEY)
    assert create(SECRET_KEY) != create("sk_test_other_account")


def test_declines_are_replayed_too(sc: stripe.StripeClient) -> None:
    """A card decline is a saved result: the retry replays the same 402, no second charge.

    https://docs.stripe.com/api/idempotent_requests
    """
    params = {"amount": 1000, "currency": "usd", "confirm": True,
              "payment_method": card(sc, "4000000000000002").id}
    ids = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as exc:
            sc.v1.payment_intents.create(params=params,  # type: ignore[arg-type]
                                         options={"idempotency_key": "decline-1"})
        ids.append(exc.value.error.payment_intent.id)
    assert ids[0] == ids[1]
    assert len(sc.v1.charges.list().data) == 1


def test_concurrent_requests_create_one_object(emulator) -> None:
    """Concurrent requests with one key never create two objects.

    https://docs.stripe.com/api/idempotent_requests
    """
    ids: list[str] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        barrier.wait()
        resp = requests.post(f"{emulator.url}/v1/customers", data={"email": "same@x.io"},
                             headers={"Authorization": f"Bearer {SECRET_KEY}",
                                      "Idempotency-Key": "concurrent-1"}, timeout=10)
        # A request that arrives while the first still runs is refused (409), not queued.
        ids.append(resp.json()["id"] if resp.status_code == 200
                   else resp.json()["error"]["code"])

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = {i for i in ids if i.startswith("cus_")}
    assert len(ids) == 8 and len(created) == 1
    assert set(ids) - created <= {"idempotency_key_in_use"}
    resp = requests.get(f"{emulator.url}/v1/customers",
                        headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=5)
    assert len(resp.json()["data"]) == 1
