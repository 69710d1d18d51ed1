"""Entry point of the single binary (deploy/build-binary.sh): the `pushq` command."""

import sys

from pushq.cli import main

if __name__ == "__main__":
    sys.exit(main())
