"""``python -m napari_hpa.cli``: the ``napari-hpa`` command."""

import sys

from . import main

sys.exit(main())
