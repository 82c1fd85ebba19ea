"""``python -m bench.e2e``: see bench/README.md."""

import sys

from bench.e2e.run import main

sys.exit(main())
