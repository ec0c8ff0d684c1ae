"""``python -m napari_hpa.cli``: the ``napari-hpa`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
