"""The keys of the review widget: :data:`KEYS`, their legend, and binding them.

Keys (chosen not to clash with napari 0.9's own shortcuts; see :data:`KEYS`):

=====================  ===========================================================
Alt+1 ... Alt+9        act on the decision strip's item 1 ... 9 (add / drop a class)
Alt+A                  accept all strong proposals (the strip says what it does)
Alt+Right / Alt+Left   next / previous image of the queue
Alt+R / Alt+U          mark reviewed / unsure (toggles)
Ctrl+Z / Ctrl+Shift+Z  undo / redo one decision (the session's undo)
Alt+T                  type a class number or name prefix (Enter toggles it)
Alt+J / Alt+N          focus the jump-to-id box / the note box
=====================  ===========================================================

Each key is a napari action (``napari-hpa:review_<action>``, registered with
``napari.utils.action_manager`` on the viewer's keymap), so it shows in, and can be
changed from, napari's Preferences > Shortcuts, and works with the canvas focused (a
selected layer's own key comes first: a Labels layer keeps Ctrl+Z for its painting undo).
In the dock itself the same default keys are Qt shortcuts of the dock.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence
from qtpy.QtWidgets import QShortcut, QWidget

#: The strip's items that have a key of their own.
STRIP_KEYS = 9

#: action -> (Qt key sequence, napari key binding, what it does)
KEYS: dict[str, tuple[str, str, str]] = {
    **{f"item{n}": (f"Alt+{n}", f"Alt-{n}", f"act on the decision strip's item {n}")
       for n in range(1, STRIP_KEYS + 1)},
    "accept": ("Alt+A", "Alt-A", "accept all strong proposals"),
    "next": ("Alt+Right", "Alt-Right", "next image"),
    "previous": ("Alt+Left", "Alt-Left", "previous image"),
    "reviewed": ("Alt+R", "Alt-R", "mark reviewed / not reviewed"),
    "unsure": ("Alt+U", "Alt-U", "mark unsure / not unsure"),
    "undo": ("Ctrl+Z", "Control-Z", "undo one decision"),
    "redo": ("Ctrl+Shift+Z", "Control-Shift-Z", "redo"),
    "type": ("Alt+T", "Alt-T", "type a class number or name to toggle"),
    "jump": ("Alt+J", "Alt-J", "type an id to jump to"),
    "note": ("Alt+N", "Alt-N", "type a note"),
}
ACTION_PREFIX = "napari-hpa:review_"

#: viewer (by id) -> its review widget's handlers
_HANDLERS: dict[int, tuple[weakref.ref, dict[str, Callable[[], object]]]] = {}
_registered: set[str] = set()


def keys_legend() -> str:
    keys = [(seq, text) for a, (seq, _, text) in KEYS.items() if not a.startswith("item")]
    return (f"Alt+1…Alt+{STRIP_KEYS} the strip's items · "
            + " · ".join(f"{seq} {text}" for seq, text in keys))


def _register_actions() -> None:
    """Register every action of :data:`KEYS` with napari's action manager, once."""
    from napari.utils.action_manager import action_manager
    from napari.viewer import Viewer

    for action, (_, napari_key, text) in KEYS.items():
        name = ACTION_PREFIX + action
        if name in _registered:
            continue

        def command(viewer: Viewer, action=action):
            entry = _HANDLERS.get(id(viewer))
            if entry is not None and entry[0]() is viewer:
                entry[1][action]()

        action_manager.register_action(name, command, f"HPA label review: {text}", Viewer)
        action_manager.bind_shortcut(name, napari_key)
        _registered.add(name)


def bind_keys(
    widget: QWidget, viewer, handlers: dict[str, Callable[[], object]]
) -> dict[str, QShortcut]:
    """Bind each action of :data:`KEYS` to its handler: as a napari action for ``viewer``
    (the canvas) and as a shortcut of ``widget`` (the dock).  Returns the shortcuts."""
    _register_actions()
    _HANDLERS[id(viewer)] = (weakref.ref(viewer), handlers)
    shortcuts: dict[str, QShortcut] = {}
    for action, (seq, _, _) in KEYS.items():
        sc = QShortcut(QKeySequence(seq), widget)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(handlers[action])
        shortcuts[action] = sc
    return shortcuts


def unbind_keys(viewer) -> None:
    """The actions no longer reach this viewer's review widget."""
    _HANDLERS.pop(id(viewer), None)
