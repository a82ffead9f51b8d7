"""The fault matrix: inject each infrastructure fault under a steady mixed load, then check
that nothing was lost, doubled or left inconsistent (RELIABILITY 13, 14, 15, 25, 26, 27).

Run it with `python -m tests.reliability.fault_matrix` (`make reliability` does). It owns
every piece it breaks, all on loopback (`stack.py`): a fresh PostgreSQL database, an
embedded Redis on a fixed port, the Stripe emulator (with a webhook registered to the app),
an SMTP sink, the app over real HTTP, and `flask worker` as a separate process.

For each fault (`faults.py`), a few client threads keep buying (new cards confirmed with the
publishable key and the client secret as Stripe.js does, saved cards, 3-D Secure, declines),
an admin keeps refunding, and the emulator keeps sending webhooks (`load.py`). After each
fault the operator's tools run (reconcile, the sweeper: `recovery.py`), the worker drains,
and the invariants are checked (`invariants.py`, one function each):

- every PaymentIntent at Stripe maps to exactly one payment, and no payment has two;
- local status, amount, currency, amount refunded and each refund equal Stripe's;
- every succeeded payment has exactly one receipt and exactly one receipt email (a row sent
  and the message in the SMTP sink; a repeat of the same Message-ID after a worker kill is
  counted, not an error);
- no payment's refunds add up to more than was captured.

It prints RELIABILITY.md's "Figures to report" and exits 1 on any violation (`run.py`).
"""
