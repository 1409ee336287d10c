"""`python -m helpers.run PARAMS ...`: the runner's entry point (see helpers.pipeline.run)."""

import sys

from .pipeline.run import main

if __name__ == "__main__":
    sys.exit(main())
