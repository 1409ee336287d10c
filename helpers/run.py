"""`python -m helpers.run PARAMS ...`: the runner's entry point (see helpers.pipeline.execute)."""

import sys

from .pipeline.execute import main

if __name__ == "__main__":
    sys.exit(main())
