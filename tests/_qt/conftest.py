"""The review widget's fixtures (``review``, ``session_path``) for the GUI tests here."""

from review_gui import review, session_path  # noqa: F401
