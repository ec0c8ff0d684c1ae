"""The 28 HPA subcellular localization classes and the four channels.

Class indices, names and counts follow the Kaggle "Human Protein Atlas Image
Classification" (2018) ``train.csv`` (31,072 images).
"""

from __future__ import annotations

from typing import NamedTuple


class HPAClass(NamedTuple):
    index: int
    name: str
    compartment: str
    kaggle_count: int


#: Every class, in index order.  ``compartment`` groups classes for display.
CLASSES: tuple[HPAClass, ...] = (
    HPAClass(0, "Nucleoplasm", "nucleus", 12885),
    HPAClass(1, "Nuclear membrane", "nucleus", 1254),
    HPAClass(2, "Nucleoli", "nucleoli", 3621),
    HPAClass(3, "Nucleoli fibrillar center", "nucleoli", 1561),
    HPAClass(4, "Nuclear speckles", "nucleus", 1858),
    HPAClass(5, "Nuclear bodies", "nucleus", 2513),
    HPAClass(6, "Endoplasmic reticulum", "secretory", 1008),
    HPAClass(7, "Golgi apparatus", "secretory", 2822),
    HPAClass(8, "Peroxisomes", "secretory", 53),
    HPAClass(9, "Endosomes", "secretory", 45),
    HPAClass(10, "Lysosomes", "secretory", 28),
    HPAClass(11, "Intermediate filaments", "cytoskeleton", 1093),
    HPAClass(12, "Actin filaments", "cytoskeleton", 688),
    HPAClass(13, "Focal adhesion sites", "cytoskeleton", 537),
    HPAClass(14, "Microtubules", "cytoskeleton", 1066),
    HPAClass(15, "Microtubule ends", "cytoskeleton", 21),
    HPAClass(16, "Cytokinetic bridge", "cell cycle", 530),
    HPAClass(17, "Mitotic spindle", "cell cycle", 210),
    HPAClass(18, "Microtubule organizing center", "cytoskeleton", 902),
    HPAClass(19, "Centrosome", "cytoskeleton", 1482),
    HPAClass(20, "Lipid droplets", "cytoplasm", 172),
    HPAClass(21, "Plasma membrane", "membranes", 3777),
    HPAClass(22, "Cell junctions", "membranes", 802),
    HPAClass(23, "Mitochondria", "cytoplasm", 2965),
    HPAClass(24, "Aggresome", "cytoplasm", 322),
    HPAClass(25, "Cytosol", "cytoplasm", 8228),
    HPAClass(26, "Cytoplasmic bodies", "cytoplasm", 328),
    HPAClass(27, "Rods & rings", "cytoplasm", 11),
)

NUM_CLASSES = len(CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
#: A class is predicted at this probability unless an ensemble or a session sets its own thresholds.
DEFAULT_THRESHOLD = 0.5
KAGGLE_COUNTS: tuple[int, ...] = tuple(c.kaggle_count for c in CLASSES)
KAGGLE_TOTAL_IMAGES = 31072

#: Channel keys in model (RGBY) order, as they appear in file names.
CHANNELS: tuple[str, ...] = ("red", "green", "blue", "yellow")
#: What each channel shows; used in layer names ``"{id} {stain}"``.
CHANNEL_STAINS: dict[str, str] = {
    "red": "microtubules",
    "green": "protein",
    "blue": "nucleus",
    "yellow": "ER",
}


def class_name(index: int) -> str:
    """Name of class ``index`` (0-27); ``IndexError`` names the valid range."""
    if not 0 <= index < NUM_CLASSES:
        raise IndexError(f"class index {index} is outside 0-{NUM_CLASSES - 1}")
    return CLASS_NAMES[index]
