"""Loaders for the shared real data sets and for user folders / COCO files, one module per source.

Each source is a small picklable callable ``loader(name) -> Sample`` plus a
function that lists the sample names; :func:`lociseg.data.load_dataset`
puts them together.
"""

from .aitslab import AITSLAB_ALIASES, AITSLAB_CHANNELS, AitslabLoader, aitslab_names
from .bbbc018 import (
    BBBC018_CHANNELS,
    BBBC018_GROUPS,
    BBBC018_UNLABELLED,
    BBBC018Loader,
    bbbc018_group,
    bbbc018_labels,
    bbbc018_names,
)
from .cellprofiler import CELLPROFILER, CellProfilerLoader, cellprofiler_names
from .channels import resolve_channels
from .coco import CocoLoader, find_coco_image_dir
from .coelho import COELHO_ALIASES, COELHO_CHANNELS, coelho_loader, coelho_names
from .deepcell import (
    DEEPCELL_ALIASES,
    DEEPCELL_CHANNELS,
    DEEPCELL_LINES,
    deepcell_line,
    deepcell_loader,
    deepcell_names,
)
from .dsb2018 import DSB_CHANNELS, DSBLoader, dsb_names, dsb_rle_labels
from .folder import FolderLoader, scan_folder
from .koyuncu import KOYUNCU_CHANNELS, KoyuncuLoader, koyuncu_names
from .pairs import PairLoader, pair_names
from .tcells import TCELLS_ALIASES, TCELLS_CHANNELS, tcells_loader, tcells_names, tcells_position
from .usiigaci import USIIGACI_ALIASES, USIIGACI_CHANNELS, usiigaci_loader, usiigaci_names

__all__ = [
    "COELHO_ALIASES",
    "COELHO_CHANNELS",
    "coelho_loader",
    "coelho_names",
    "DEEPCELL_ALIASES",
    "DEEPCELL_CHANNELS",
    "DEEPCELL_LINES",
    "deepcell_line",
    "deepcell_loader",
    "deepcell_names",
    "PairLoader",
    "pair_names",
    "TCELLS_ALIASES",
    "TCELLS_CHANNELS",
    "tcells_loader",
    "tcells_names",
    "tcells_position",
    "USIIGACI_ALIASES",
    "USIIGACI_CHANNELS",
    "usiigaci_loader",
    "usiigaci_names",
    "AITSLAB_ALIASES",
    "AITSLAB_CHANNELS",
    "AitslabLoader",
    "aitslab_names",
    "BBBC018_CHANNELS",
    "BBBC018_GROUPS",
    "BBBC018_UNLABELLED",
    "BBBC018Loader",
    "bbbc018_group",
    "bbbc018_labels",
    "bbbc018_names",
    "CELLPROFILER",
    "CellProfilerLoader",
    "cellprofiler_names",
    "resolve_channels",
    "CocoLoader",
    "find_coco_image_dir",
    "DSB_CHANNELS",
    "DSBLoader",
    "dsb_names",
    "dsb_rle_labels",
    "FolderLoader",
    "scan_folder",
    "KOYUNCU_CHANNELS",
    "KoyuncuLoader",
    "koyuncu_names",
]
