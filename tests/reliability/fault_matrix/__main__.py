"""`python -m tests.reliability.fault_matrix`: run the matrix, exit 1 on any violation."""

import sys

from tests.reliability.fault_matrix.run import main

sys.exit(main())
