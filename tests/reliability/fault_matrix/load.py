"""The load under which each fault is injected: shoppers buying with new cards (confirmed
with the publishable key and the client secret as Stripe.js does), saved cards, 3-D Secure and
declines, and an admin refunding, all through the public API."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests

from payments_site.services.accounts import create_user
from payments_site.services.catalog import create_product
from tests.reliability.fault_matrix.stack import STRIPE_PUBLISHABLE_KEY, MatrixStack

PASSWORD = "fault-matrix-password"
VISA = "4242424242424242"
NEW_CARDS = [  # (number, weight, 3-D Secure outcome when asked)
    (VISA, 55, None),
    ("4000000000000002", 8, None),           # card_declined
    ("4000000000009995", 5, None),           # insufficient_funds
    ("4000000000000069", 3, None),           # expired_card
    ("4000002500003155", 12, True),          # 3DS, completed
    ("4000000000003220", 6, False),          # 3DS, failed
]
SAVED_3DS_EVERY_TIME = "4000002760003184"


@dataclass
class Shopper:
    email: str
    token: str
    saved_card: str
    saved_card_3ds: str | None = None
    carts: int = 0


@dataclass
class LoadStats:
    operations: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    paid: list[tuple[str, int]] = field(default_factory=list)  # (payment id, amount)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, outcome: str) -> None:
        with self.lock:
            self.operations[operation] += 1
            self.outcomes[f"{operation}:{outcome}"] += 1


class Load:
    """Client threads buying and refunding through the public API until stopped."""

    def __init__(self, stack: MatrixStack, shoppers: list[Shopper], admin_token: str,
                 products: list[int], threads: int) -> None:
        self.stack = stack
        self.shoppers = shoppers
        self.admin_token = admin_token
        self.products = products
        self.threads = threads
        self.stats = LoadStats()
        self.stopping = threading.Event()
        self.cart_lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    # The shared pool of succeeded payments outlives one phase: refunds pick from it.
    paid_pool: list[tuple[str, int]] = []

    def start(self) -> None:
        self.stopping.clear()
        self.stats = LoadStats()
        self.workers = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(self.threads)]
        for thread in self.workers:
            thread.start()

    def stop(self) -> LoadStats:
        self.stopping.set()
        for thread in self.workers:
            thread.join(timeout=60)
        return self.stats

    def _run(self, number: int) -> None:
        rng = random.Random(number * 7919 + int(time.time()))
        session = requests.Session()
        while not self.stopping.is_set():
            shopper = self.shoppers[rng.randrange(len(self.shoppers))]
            roll = rng.random()
            try:
                if roll < 0.50:
                    self.new_card_checkout(session, shopper, rng)
                elif roll < 0.80:
                    self.saved_card_checkout(session, shopper, rng)
                else:
                    self.refund(session, rng)
            except requests.RequestException as error:
                self.stats.record("transport", type(error).__name__)

    def next_cart(self, shopper: Shopper) -> list[dict[str, int]]:
        with self.cart_lock:
            shopper.carts += 1
            n = shopper.carts
        # A distinct cart per attempt: the same cart again would (rightly) be a double submit.
        product = self.products[n % len(self.products)]
        return [{"product_id": product, "quantity": n // len(self.products) % 99 + 1}]

    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _process(self, operation: str, session: requests.Session, shopper: Shopper,
                 body: dict[str, Any], attempts: int = 3) -> requests.Response:
        """POST /api/payments/process, retried like a customer clicking "Pay" again."""
        response = None
        for attempt in range(attempts):
            response = session.post(f"{self.stack.url}/api/payments/process", json=body,
                                    headers=self._auth(shopper.token), timeout=30)
            if response.status_code not in (409, 429, 500, 502, 503):
                break
            if attempt < attempts - 1:
                self.stats.outcomes[f"{operation}:process {response.status_code}, "
                                    "customer retried"] += 1
            time.sleep(0.3)
        assert response is not None
        return response

    def new_card_checkout(self, session: requests.Session, shopper: Shopper,
                          rng: random.Random) -> None:
        number, _, three_ds = rng.choices(NEW_CARDS, weights=[w for _, w, _ in NEW_CARDS])[0]
        # Some customers give up after one error instead of clicking "Pay" again.
        response = self._process("new_card", session, shopper,
                                 {"items": self.next_cart(shopper)},
                                 attempts=3 if rng.random() > 0.3 else 1)
        if response.status_code != 201:
            self.stats.record("new_card", f"process {response.status_code}")
            return
        body = response.json()
        secret = body["client_secret"]
        intent_id = secret.split("_secret_")[0]
        confirmed = None
        for _ in range(3):  # what Stripe.js does on the customer's click (and a second click)
            confirmed = pk_post(self.stack, f"/v1/payment_intents/{intent_id}/confirm", {
                "client_secret": secret, "payment_method_data[type]": "card",
                "payment_method_data[card][number]": number,
                "payment_method_data[card][exp_month]": "12",
                "payment_method_data[card][exp_year]": "2031",
                "payment_method_data[card][cvc]": "123",
                "return_url": f"{self.stack.url}/checkout/complete"})
            if confirmed.status_code < 500 and confirmed.status_code != 429:
                break
            time.sleep(0.3)
        assert confirmed is not None
        status = confirmed.json().get("status") if confirmed.status_code == 200 else None
        if status == "requires_action":
            pk_post(self.stack, f"/v1/payment_intents/{intent_id}/_authenticate"
                                f"?success={'true' if three_ds else 'false'}",
                    {"client_secret": secret})
        # The browser comes back to the return page (the webhook may be earlier or later).
        page = session.get(f"{self.stack.url}/checkout/complete",
                           params={"payment": body["payment"]["id"],
                                   "payment_intent": intent_id},
                           headers=self._auth(shopper.token), timeout=30)
        self.stats.record("new_card", f"confirm {confirmed.status_code} page {page.status_code}")
        if status == "succeeded" or (status == "requires_action" and three_ds):
            with self.stats.lock:
                Load.paid_pool.append((body["payment"]["id"], body["payment"]["amount"]))

    def saved_card_checkout(self, session: requests.Session, shopper: Shopper,
                            rng: random.Random) -> None:
        card = shopper.saved_card
        if shopper.saved_card_3ds and rng.random() < 0.3:
            card = shopper.saved_card_3ds
        response = self._process("saved_card", session, shopper,
                                 {"items": self.next_cart(shopper), "payment_method_id": card},
                                 attempts=3 if rng.random() > 0.3 else 1)
        outcome = str(response.status_code)
        if response.status_code == 201:
            body = response.json()
            if body["requires_action"]:
                secret = body["client_secret"]
                intent_id = secret.split("_secret_")[0]
                pk_post(self.stack, f"/v1/payment_intents/{intent_id}/_authenticate"
                                    "?success=true", {"client_secret": secret})
                outcome += " 3ds"
            with self.stats.lock:
                Load.paid_pool.append((body["payment"]["id"], body["payment"]["amount"]))
        self.stats.record("saved_card", outcome)

    def refund(self, session: requests.Session, rng: random.Random) -> None:
        with self.stats.lock:
            if not Load.paid_pool:
                return
            payment_id, amount = rng.choice(Load.paid_pool)
        response = session.post(f"{self.stack.url}/api/payments/refund", json={
            "payment_id": payment_id, "amount": rng.randint(100, max(101, amount // 2)),
            "reason": "requested_by_customer"}, headers=self._auth(self.admin_token),
            timeout=30)
        self.stats.record("refund", str(response.status_code))


def pk_post(stack: MatrixStack, path: str, data: dict[str, str]) -> requests.Response:
    """A publishable-key call, as the emulator's Stripe.js makes it from the browser."""
    return requests.post(f"{stack.emulator.url}{path}",
                         data={"key": STRIPE_PUBLISHABLE_KEY, **data}, timeout=30)


def metadata(obj: Any, key: str) -> str | None:
    data = obj.metadata.to_dict() if getattr(obj, "metadata", None) is not None else {}
    value = data.get(key)
    return str(value) if value is not None else None


# --- customers ---------------------------------------------------------------------------------

def bootstrap(stack: MatrixStack, customers: int) -> tuple[list[Shopper], str, list[int]]:
    """Customers (each with a saved card, one also with an always-3DS card), an admin, a
    catalog; all through the CLI services and the public API."""
    with stack.app.app_context():
        products = [create_product(f"Item {n}", 500 + 37 * n, "usd").id for n in range(20)]
        admin = create_user("admin@faults.example", PASSWORD, role="admin", name="Ops")
        emails = [create_user(f"shopper{n}@faults.example", PASSWORD, name=f"Shopper {n}").email
                  for n in range(customers)]
        admin_email = admin.email

    def token(address: str) -> str:
        response = requests.post(f"{stack.url}/api/auth/token",
                                 json={"email": address, "password": PASSWORD}, timeout=30)
        response.raise_for_status()
        return str(response.json()["token"])

    def save_card(bearer: str, number: str) -> str:
        auth = {"Authorization": f"Bearer {bearer}"}
        response = requests.post(f"{stack.url}/api/payments/methods/setup-intent", json={},
                                 headers=auth, timeout=30)
        response.raise_for_status()
        secret = response.json()["client_secret"]
        seti = secret.split("_secret_")[0]
        confirmed = pk_post(stack, f"/v1/setup_intents/{seti}/confirm", {
            "client_secret": secret, "payment_method_data[type]": "card",
            "payment_method_data[card][number]": number,
            "payment_method_data[card][exp_month]": "12",
            "payment_method_data[card][exp_year]": "2031",
            "payment_method_data[card][cvc]": "123"})
        if confirmed.status_code == 200 and confirmed.json()["status"] == "requires_action":
            pk_post(stack, f"/v1/setup_intents/{seti}/_authenticate?success=true",
                    {"client_secret": secret})
        elif confirmed.status_code != 200:  # the emulator's Stripe.js fallback: secret key
            stack.sdk.v1.setup_intents.confirm(seti, {"payment_method": stack.sdk.v1
                                                      .payment_methods.create({
                                                          "type": "card", "card": {
                                                              "number": number,
                                                              "exp_month": 12,
                                                              "exp_year": 2031,
                                                              "cvc": "123"}}).id})
        response = requests.post(f"{stack.url}/api/payments/methods/save",
                                 json={"setup_intent_id": seti}, headers=auth, timeout=30)
        response.raise_for_status()
        return str(response.json()["payment_method"]["id"])

    shoppers = []
    for n, address in enumerate(emails):
        bearer = token(address)
        shopper = Shopper(address, bearer, save_card(bearer, VISA))
        if n == 0:
            shopper.saved_card_3ds = save_card(bearer, SAVED_3DS_EVERY_TIME)
        shoppers.append(shopper)
    return shoppers, token(admin_email), products


# --- double submits ----------------------------------------------------------------------------

def double_submits(stack: MatrixStack, load: Load, pairs: int) -> tuple[int, int]:
    """`pairs` checkouts each submitted twice at once (no Idempotency-Key, then the same key);
    returns (checkouts, the most PaymentIntents any one of them got)."""
    most = 0
    for n in range(pairs):
        shopper = load.shoppers[n % len(load.shoppers)]
        body: dict[str, Any] = {"items": load.next_cart(shopper)}
        if n % 2:
            body["payment_method_id"] = shopper.saved_card
        headers = {"Authorization": f"Bearer {shopper.token}"}
        if n % 3 == 0:
            headers["Idempotency-Key"] = f"double-{uuid.uuid4().hex}"
        results: list[requests.Response] = []
        barrier = threading.Barrier(2)

        def submit(body: dict[str, Any], headers: dict[str, str],
                   barrier: threading.Barrier, results: list[requests.Response]) -> None:
            barrier.wait()
            results.append(requests.post(f"{stack.url}/api/payments/process", json=body,
                                         headers=headers, timeout=30))

        threads = [threading.Thread(target=submit, args=(body, headers, barrier, results))
                   for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        payment_ids = {r.json()["payment"]["id"] for r in results if r.status_code == 201}
        intents = {pi.id for pi in stack.sdk.v1.payment_intents.list({"limit": 100}).data
                   if metadata(pi, "payment_id") in payment_ids}
        most = max(most, len(intents), len(payment_ids))
        for response in results:
            if response.status_code == 201 and response.json()["payment"]["status"] == \
                    "succeeded":
                Load.paid_pool.append((response.json()["payment"]["id"],
                                       response.json()["payment"]["amount"]))
    return pairs, most
