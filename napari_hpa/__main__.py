"""``python -m napari_hpa``: the ``napari-hpa`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
