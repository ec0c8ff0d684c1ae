"""napari-hpa: Human Protein Atlas four-channel microscopy in napari and on the command line."""

from .classes import CHANNEL_STAINS, CHANNELS, CLASS_NAMES, CLASSES, NUM_CLASSES
from .errors import HPAError, ImageSetError, LabelsCSVError
from .imageset import ImageSet, find_sets, read_set

__version__ = "0.1.0"

__all__ = [
    "CHANNELS",
    "CHANNEL_STAINS",
    "CLASSES",
    "CLASS_NAMES",
    "NUM_CLASSES",
    "HPAError",
    "ImageSet",
    "ImageSetError",
    "LabelsCSVError",
    "find_sets",
    "read_set",
]
