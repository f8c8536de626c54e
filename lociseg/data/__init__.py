"""Data sets: the :class:`Sample` record, lazy datasets, loaders and fixed splits.

>>> from lociseg.data import load_dataset
>>> ds = load_dataset("bbbc018@val")            # actin + DNA, filled cell outlines
>>> sample = ds[0]; sample.image.shape, sample.labels.max()
"""

from .dataset import Sample, SegmentationDataset, default_data_root
from .load import DATASETS, load_dataset, load_samples, parse_spec
from .sources import bbbc018_group, bbbc018_labels, dsb_rle_labels, scan_folder
from .splits import SPLITS, load_split, make_splits
from .summary import dataset_summary

__all__ = [
    "Sample",
    "SegmentationDataset",
    "default_data_root",
    "load_dataset",
    "load_samples",
    "parse_spec",
    "DATASETS",
    "load_split",
    "make_splits",
    "SPLITS",
    "dataset_summary",
    "bbbc018_labels",
    "bbbc018_group",
    "dsb_rle_labels",
    "scan_folder",
]
