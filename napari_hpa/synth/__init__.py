"""Synthetic HPA-like fields of view with ground-truth masks.

No HPA training data can be downloaded where this project is developed, so the
models are trained, evaluated and their attention maps scored on procedurally
generated fields of view.  A field is a ``(4, H, W)`` uint8 image in RGBY order
(red = microtubules, green = protein of interest, blue = nucleus, yellow = ER)
plus a ``(28, H, W)`` boolean mask, one plane per class, non-empty exactly for
the classes in the field's label set.

How a field is made (all sizes below are in pixels of a 512 x 512 Kaggle-scale
field, where a nucleus is about 35-60 px long):

* Layout: 17-30 cells are placed by best-candidate dart throwing (an even,
  subconfluent spread).  Each cell is an oval nucleus (35-60 px long) plus a
  cytoplasm whose width varies with the angle: a strong 2nd harmonic along the
  nucleus' long axis elongates the cell (aspect about 1.5-3, a quarter
  spindle-shaped), the 1st offsets the nucleus, the 3rd/4th give polygonal
  corners; smooth noise on the normalised coordinate makes the outline
  irregular.  Cells compete for pixels by that coordinate, so neighbours touch
  along irregular borders.  Geometry is computed at half resolution and
  upsampled; cell edges fade over a few pixels only.
* Colour balance (matched to a real HPA field at 512, displayed additively
  with yellow as red + green): yellow ER is the strongest cytoplasmic signal,
  densest around the nucleus; red microtubules are long, gently curving
  filaments, brighter in bundles at the cell cortex; both have per-cell and
  patchy within-cell brightness.  Diffuse green fills (nucleoplasm, cytosol)
  are dimmer than point-like or thin patterns (``_BOOST``), so nuclei read
  blue with a green tint.
* Channels: smooth envelopes (per-cell brightness, density near the nucleus)
  are drawn at half resolution and upsampled bilinearly (the "slight blur");
  fine textures (microtubule mesh, ER reticulum, chromatin mottle) are
  precomputed once at full resolution and cropped at random offsets.
* Green: the union of the patterns of the field's classes (see ``patterns._RENDER``),
  each scaled by its display gain ``patterns._BOOST``; each class's pattern is
  normalised to peak ~1 and its mask is the pattern above ``render._MASK_FRAC`` of
  that peak, inside cells.  Notable patterns: actin (12) = straight stress
  fibres along the cell's long axis (a 1-D bundle profile, a second family at
  a small angle); intermediate filaments (11) = wavy fibres in the cytoplasm
  only, densest around the nucleus; plasma membrane (21) = a ~1 px rim;
  junctions (22) = beaded lines only where two cells touch; centrosome (19) =
  one or two tight dots beside the nucleus; MTOC (18) = a dot with a radiating
  aster.
* Cell-cycle classes: class 16 places a pair of small daughter cells with
  condensed nuclei joined by a bridge; class 17 places a rounded mitotic cell
  with a metaphase plate (blue) and a bipolar spindle.  Such cells also appear
  (without their green pattern) in other fields, so that their presence alone
  does not give the label away.

Label sets (:func:`draw_labels`): 1-4 classes, the count drawn with the Kaggle
2018 proportions; the first class is drawn from the requested frequencies,
further ones either from a small hand-written companion table derived from
Kaggle 2018 co-occurrences (nucleoplasm with cytosol, nucleoli with
nucleoplasm, endosomes with lysosomes, ...) or from the frequencies again.  The
first-class probabilities are solved so that the marginal frequency of each
class matches the target (uniform, or Kaggle).  Combinations that would be
ambiguous in the rendering are never drawn: MTOC with centrosome (both a dot by
the nucleus) and plasma membrane with cell junctions (junctions are a subset of
the membrane rim).

Determinism: image ``i`` of a dataset with seed ``s`` uses the seed sequence
``SeedSequence(s, spawn_key=(0, i))`` for its layout, antibody group ``g`` uses
``(1, g)`` for labels and pattern parameters, and noisy-label selection uses
``(2,)``.  Image ``i`` therefore does not depend on ``n``, on the order of
generation, or on how many workers generate.

Masks on disk: ``masks/{id}.npz`` stores only the planes of the classes present,
bit-packed along the last axis (``packed``: ``(k, H, ceil(W/8))`` uint8, from
``np.packbits(m, axis=-1)``), with ``classes`` (``(k,)`` int) and ``shape``
(``(28, H, W)``).  :func:`load_masks` always returns the full ``(28, H, W)``
bool array (it also accepts files holding a full array under ``masks``).

Modules: ``labelsets`` (label sets, antibody parameters), ``textures`` (the
texture bank, blurs, kernels, splatting), ``layout`` (cell placement and the
per-pixel geometry), ``patterns`` (one green-pattern painter per class),
``render`` (:func:`generate_field`, :func:`sample_field`), ``render3`` (what
generator v3 draws differently), ``masks`` (mask files), ``dataset``
(:func:`generate_dataset`, PNG writing, noisy labels).

Versions: everything above describes generator v2, the default (``version=2``;
its output is byte-identical to what the shipped models were trained on).
``version=3`` is opt-in: fewer, bigger cells with ruffled edges and a confluence
that varies per field, bigger lobed nuclei, microtubules traced as long wavy
filaments, granular ER, a grainy protein channel over a weak diffuse background
and per-field log-normal channel gains, blue's kept mostly below saturation
(see :mod:`.render3`).
This package re-exports their public names.
"""

from .dataset import (
    GENERATOR_VERSION,
    GENERATOR_VERSIONS,
    PNG_LEVEL,
    DatasetSummary,
    generate_dataset,
    write_field,
)
from .labelsets import (
    FREQS,
    INCOMPATIBLE,
    draw_antibody_params,
    draw_label_sets,
    draw_labels,
)
from ..dataset import MASKS, load_masks, mask_path, save_masks  # a labelled folder's masks
from .render import (
    SAMPLE_LABELS,
    SAMPLE_SEED,
    SyntheticField,
    generate_field,
    sample_field,
)

__all__ = [
    "GENERATOR_VERSION",
    "GENERATOR_VERSIONS",
    "SyntheticField",
    "DatasetSummary",
    "draw_labels",
    "draw_label_sets",
    "draw_antibody_params",
    "generate_field",
    "generate_dataset",
    "load_masks",
    "save_masks",
    "sample_field",
    "SAMPLE_SEED",
    "SAMPLE_LABELS",
    "INCOMPATIBLE",
    "FREQS",
    "MASKS",
    "mask_path",
    "write_field",
    "PNG_LEVEL",
]
