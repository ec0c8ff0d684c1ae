"""``python -m napari_hpa``: the ``napari-hpa`` command."""

import sys

from .cli import main

sys.exit(main())
