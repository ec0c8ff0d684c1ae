"""What the review asks the user to decide on one image: the model's proposals (add a class
it finds probable, drop a labelled class it finds improbable), each with the strength of
its evidence, and what accepting all of them would do (no store, no Qt).

The strength of a proposal is the probability that it is right: for "add k" the
probability that class ``k`` is present, for "drop k" that it is absent.  It is read from
the model's probability, Platt-scaled per class to the session's labels when that
calibration is known (:func:`.ordering.calibration`): a class the model sees poorly has low
raw probabilities even where it is present, so a low one there is weak evidence.

Accepting all (:func:`accept_plan`) applies only the strong proposals: a weak call is
listed as kept, never applied silently, so a labelled class the model is unsure of is not
dropped by a key pressed down the queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..classes import CLASSES
from ..labels import Target
from . import ordering

#: A proposal at least this likely to be right is strong (accept-all applies it).
STRONG = 0.75


@dataclass(frozen=True)
class Proposal:
    """One disagreement between the labels and the model, as an action."""

    action: str  # "add" or "drop"
    cls: int
    prob: float  # the model's probability of the class
    threshold: float
    strength: float  # probability that the proposal is right, in [0, 1]

    @property
    def strong(self) -> bool:
        return self.strength >= STRONG

    @property
    def text(self) -> str:
        """``"add 6 Endoplasmic reticulum"``."""
        return f"{self.action} {self.cls} {CLASSES[self.cls].name}"

    @property
    def evidence(self) -> str:
        """The evidence in words: ``"p 0.91 · 88 % sure"``."""
        return f"p {self.prob:.2f} · {self.strength * 100:.0f} % sure"


@dataclass(frozen=True)
class Plan:
    """What accepting all proposals does: the labels after, and the proposals it applies
    and keeps (the weak ones)."""

    before: Target
    after: Target
    applied: tuple[Proposal, ...]
    kept: tuple[Proposal, ...]

    @property
    def text(self) -> str:
        """``"add 6 Endoplasmic reticulum; keeps 27 Rods & rings (weak)"``."""
        if not self.applied and not self.kept:
            return "labels and model agree"
        done = "; ".join(p.text for p in self.applied) or "changes nothing"
        verb = {"drop": "keeps", "add": "does not add"}
        kept = [f"{verb[a]} " + class_names(tuple(p.cls for p in self.kept if p.action == a))
                for a in ("drop", "add") if any(p.action == a for p in self.kept)]
        return done + (f"; {'; '.join(kept)} (weak evidence)" if kept else "")


def class_names(target: Target) -> str:
    """A label set in words: ``"0 Nucleoplasm, 25 Cytosol"`` (``"none"`` when empty)."""
    return ", ".join(f"{k} {CLASSES[k].name}" for k in target) or "none"


def proposals(
    labels: Target,
    probs: np.ndarray | None,
    thresholds: np.ndarray,
    calibration: np.ndarray | None = None,
) -> tuple[Proposal, ...]:
    """The model's proposals for an image with ``labels`` and ``probs`` (28): add every
    class of its predicted set (``p >= threshold``, the top class always) that is not
    labelled, drop every labelled class outside it; strongest first.  ``calibration``
    is the ``(2, 28)`` Platt scaling of :func:`.ordering.calibration`, or ``None`` (the
    raw probabilities are the strengths).  No probabilities: no proposals."""
    if probs is None:
        return ()
    probs = np.asarray(probs, dtype=np.float64)
    thresholds = ordering.as_thresholds(thresholds)
    q = probs if calibration is None else ordering.calibrated_probs(probs, calibration)
    predicted = ordering.predicted_sets(probs, thresholds)[0]
    have = set(labels)
    out = []
    for k in range(len(probs)):
        if predicted[k] and k not in have:
            action, strength = "add", float(q[k])
        elif k in have and not predicted[k]:
            action, strength = "drop", float(1 - q[k])
        else:
            continue
        out.append(Proposal(action, k, float(probs[k]), float(thresholds[k]), strength))
    return tuple(sorted(out, key=lambda p: (-p.strength, p.cls)))


def apply(labels: Target, chosen) -> Target:
    """``labels`` with the proposals ``chosen`` applied."""
    s = set(labels)
    for p in chosen:
        if p.action == "add":
            s.add(p.cls)
        else:
            s.discard(p.cls)
    return tuple(sorted(s))


def accept_plan(labels: Target, props: tuple[Proposal, ...]) -> Plan:
    """What accepting all ``props`` does: the strong ones applied, the weak ones kept."""
    applied = tuple(p for p in props if p.strong)
    kept = tuple(p for p in props if not p.strong)
    return Plan(tuple(labels), apply(labels, applied), applied, kept)


def class_for(text: str) -> int:
    """The class that ``text`` names: its index (``"27"``) or the start of its name, case
    ignored (``"rods"``, ``"nucleoli f"``); ``ValueError`` saying why not (none, several)."""
    text = " ".join(str(text).split()).lower()
    if not text:
        raise ValueError("type a class number or the start of its name")
    if text.isdigit():
        k = int(text)
        if not 0 <= k < len(CLASSES):
            raise ValueError(f"class {k} is outside 0-{len(CLASSES) - 1}")
        return k
    exact = [c.index for c in CLASSES if c.name.lower() == text]
    if exact:
        return exact[0]
    found = [c for c in CLASSES if c.name.lower().startswith(text)]
    if not found:
        raise ValueError(f"no class name starts with {text!r}")
    if len(found) > 1:
        raise ValueError(f"{text!r} starts {len(found)} class names: "
                         + ", ".join(f"{c.index} {c.name}" for c in found))
    return found[0].index
