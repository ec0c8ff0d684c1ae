"""The keys of the review widget: :data:`KEYS`, their legend, and binding them as Qt
shortcuts and in the napari viewer's keymap.

Keys (chosen not to clash with napari 0.9's own shortcuts; see :data:`KEYS`):

=====================  ===========================================================
Alt+Right / Alt+Left   next / previous image of the queue
Alt+A                  accept the model's predicted label set
Alt+R                  mark reviewed / not reviewed
Ctrl+Z / Ctrl+Shift+Z  undo / redo (the session's undo: appends the inverse edit)
Alt+J / Alt+N          focus the jump-to-id box / the note box
Space                  toggles the focused class check box (Tab moves between them)
=====================  ===========================================================

The Alt keys are window-wide shortcuts, so they work wherever the focus is in
the napari window (canvas with an image layer selected, layer list, this dock).
Ctrl+Z / Ctrl+Shift+Z are bound in this dock and in the *viewer* keymap, which
napari consults after the selected layer's keymap: with an image layer selected
they reach the review, and a Labels layer keeps its own painting undo.
"""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import QShortcut, QWidget

#: action -> (Qt key sequence, napari viewer-keymap key or None, what it does)
KEYS: dict[str, tuple[str, str | None, str]] = {
    "next": ("Alt+Right", None, "next image"),
    "previous": ("Alt+Left", None, "previous image"),
    "accept": ("Alt+A", None, "accept the model's predicted labels"),
    "reviewed": ("Alt+R", None, "mark reviewed / not reviewed"),
    "undo": ("Ctrl+Z", "Control-Z", "undo"),
    "redo": ("Ctrl+Shift+Z", "Control-Shift-Z", "redo"),
    "jump": ("Alt+J", None, "type an id to jump to"),
    "note": ("Alt+N", None, "type a note"),
}
#: Keys that must yield to a layer's own binding (Labels: Ctrl+Z paints undo): bound
#: to this dock only (Qt) and to the viewer keymap (napari asks the layer first).
_LOCAL_KEYS = frozenset({"undo", "redo"})


def keys_legend() -> str:
    keys = " · ".join(f"{seq} {text}" for seq, _, text in KEYS.values())
    return keys + " · Space toggles a class"


def bind_keys(
    widget: QWidget, viewer, handlers: dict[str, Callable[[], object]]
) -> tuple[dict[str, QShortcut], list[str]]:
    """Bind each action of :data:`KEYS` to its handler: a shortcut of ``widget`` and, where
    named, a key of the ``viewer`` keymap.  Returns the shortcuts and the viewer keys bound."""
    shortcuts: dict[str, QShortcut] = {}
    viewer_keys: list[str] = []
    for action, (seq, napari_key, _) in KEYS.items():
        sc = QShortcut(QKeySequence(seq), widget)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut if action in _LOCAL_KEYS
                      else Qt.ShortcutContext.WindowShortcut)
        sc.activated.connect(handlers[action])
        shortcuts[action] = sc
        if napari_key is not None:
            handler = handlers[action]
            viewer.bind_key(napari_key, lambda viewer, h=handler: h(), overwrite=True)
            viewer_keys.append(napari_key)
    return shortcuts, viewer_keys


def unbind_viewer_keys(viewer, keys: list[str]) -> None:
    """Remove ``keys`` from the viewer keymap."""
    for key in keys:
        try:
            viewer.bind_key(key, None)
        except Exception:  # already unbound
            pass
