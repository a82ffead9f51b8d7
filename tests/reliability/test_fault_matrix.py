"""The fault matrix's own check can fail: books broken on purpose are reported, exit 1.

The matrix itself (RELIABILITY 13, 14, 15, 25, 26 and 27 under load) runs from
`make reliability` as `python -m tests.reliability.fault_matrix`; this slow test runs only
its baseline and then sabotages the database and Stripe, so a checker that stopped checking
would be noticed.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from payments_site.devtools.stack import ROOT


@pytest.mark.slow
def test_the_fault_matrix_catches_broken_books():
    """RELIABILITY 25, 26, 27: the invariant checker flags drift, a lost email, an orphan PI."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.fault_matrix", "--only", "baseline",
         "--seconds", "3", "--sabotage"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = result.stdout
    assert result.returncode == 1, output[-3000:] + result.stderr[-3000:]
    baseline = re.search(r"^none \(baseline\)\s+(\d+)\s+(\d+)", output, re.M)
    sabotage = re.search(r"^sabotage \(must be caught\)\s+\d+\s+(\d+)", output, re.M)
    assert baseline and int(baseline.group(1)) > 0 and int(baseline.group(2)) == 0, output
    assert sabotage and int(sabotage.group(1)) >= 3, output
    assert "has no local payment" in output
    assert "receipt emails rows=0" in output
    assert re.search(r"refunded \d+ != \d+", output)
