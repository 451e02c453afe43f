"""`python -m bench` is `python -m bench.benchmark`."""

import sys

from bench.benchmark import main

sys.exit(main())
