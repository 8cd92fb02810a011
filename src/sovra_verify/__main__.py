"""``python -m sovra_verify``: the same as the ``sovra-verify`` command."""

import sys

from sovra_verify.cli import main

sys.exit(main())
