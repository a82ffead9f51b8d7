"""Fixtures of the browser tests of the site; the browser harness itself is tests/browser.py.

- ``lived_in_account`` (function): a customer with saved cards and paid, refunded, partially
  refunded, failed and not completed payments, their receipts emailed, and an admin
  (``tests/e2e/accounts.py``).
"""

from tests.e2e.accounts import lived_in_account  # noqa: F401 (pytest finds fixtures by name)
