"""``load_dataset``: one entry point for the shared data sets, folders and COCO files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, InputError
from ..io import read_coco
from . import sources as S
from .dataset import SegmentationDataset, default_data_root
from .splits import SPLITS, load_split

TARGETS = ("cells", "nuclei")
TARGETED = ("bbbc018", "aitslab", "deepcell")  # data sets with both cell and nucleus labels

__all__ = ["load_dataset", "load_samples", "DATASETS", "parse_spec", "split_selection"]

# name -> (folder under the data root, stored split name or None)
DATASETS = {
    "bbbc018": ("bbbc018", "bbbc018"),
    "dsb2018-test": ("dsb2018_stage1_test", "dsb2018-test"),
    "dsb2018-train": ("dsb2018_stage1_train_subset", "dsb2018-train"),
    "koyuncu": ("koyuncu_hoechst_nuclei", "koyuncu"),
    "aitslab": ("aitslab_u2os", "aitslab"),
    "aitslab-nuclei": ("aitslab_u2os", "aitslab-nuclei"),
    "deepcell": ("deepcell_covertlab", "deepcell"),
    "usiigaci": ("usiigaci_phase", "usiigaci"),
    "coelho": ("coelho2009_u2os", "coelho"),
    "tcells": ("dense_tcells_tissue", "tcells"),
    "cellprofiler-human": ("cellprofiler_examples", None),
    "cellprofiler-fly": ("cellprofiler_examples", None),
}


def split_selection(spec: str) -> tuple[str, list[str] | None]:
    """Split ``"spec#name1,name2"`` into (spec, [name1, name2]); (spec, None) without ``#``.

    A spec that is an existing path is never split (file names may hold ``#``).
    """
    head, sep, tail = spec.rpartition("#")
    if not sep or Path(spec).exists():
        return spec, None
    names = [n.strip() for n in tail.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"{spec!r}: no sample names after '#'")
    if len(set(names)) != len(names):
        raise ConfigError(f"{spec!r}: a sample is named twice after '#'")
    return head, names


def parse_spec(spec: str) -> tuple[str, str | None, str | None]:
    """Split ``"name:target@split"`` into (name, target, split); either suffix may be missing.

    Only known targets (cells, nuclei) and splits (train, val, test) are
    split off, so paths containing ``:`` or ``@`` pass through unchanged. A
    trailing ``#names`` selection (:func:`split_selection`) is dropped.
    """
    base, split, target = split_selection(spec)[0], None, None
    head, sep, tail = base.rpartition("@")
    if sep and tail in SPLITS:
        base, split = head, tail
    head, sep, tail = base.rpartition(":")
    if sep and tail in TARGETS:
        base, target = head, tail
    return base, target, split


def load_dataset(
    spec: str | os.PathLike,
    *,
    split: str | None = None,
    root: str | os.PathLike | None = None,
    channels: Sequence[int | str] | int | str | None = None,
    target: str | None = None,
) -> SegmentationDataset:
    """Open a data set lazily.

    Parameters
    ----------
    spec : str or path-like
        A shared data set name: ``"bbbc018"`` (``"bbbc018:nuclei"`` for the
        nucleus outlines), ``"dsb2018-test"``, ``"dsb2018-train"``,
        ``"koyuncu"``, ``"aitslab"`` (U2OS cells; ``"aitslab:nuclei"`` for the
        nuclei of the same fields), ``"aitslab-nuclei"`` (50 nucleus-channel
        fields), ``"cellprofiler-human"``, ``"cellprofiler-fly"``; a
        folder (``images/`` + ``masks/``, Cellpose ``*_img``/``*_masks``
        pairs, or images only); or a COCO/LIVECell ``.json`` file. A suffix
        ``@train``/``@val``/``@test`` selects a stored split, and a last
        ``#name1,name2`` keeps only those samples, in that order (e.g.
        ``"bbbc018@train#00735,00736"``: a model fitted to two fields).
    split : {"train", "val", "test"}, optional
        Stored split (see :mod:`lociseg.data.splits`); overrides ``@split``.
    root : path, optional
        Data root for named data sets (default :func:`default_data_root`);
        image folder for a COCO file.
    channels : sequence of int or str, optional
        Channels to load, in order, by name or index. Defaults:
        BBBC018 ``("actin", "DNA")`` (of DNA / actin / pH3), Koyuncu
        ``("blue",)``, DSB2018 one grey channel, Aitslab ``("cell", "nucleus")``, DeepCell ``("phase", "nucleus")``,
        Usiigaci ``("phase",)``, Coelho ``("DNA",)``, tissue T cells
        ``("membrane", "DAPI")``, CellProfiler human
        ``("actin", "DNA")`` and fly ``("FITC", "DNA")``; folders: all.
    target : {"cells", "nuclei"}, optional
        BBBC018 / Aitslab / DeepCell label target (default ``"cells"``).

    Returns
    -------
    SegmentationDataset
    """
    spec_str = os.fspath(spec)
    rest, picked = split_selection(spec_str)
    if picked is not None:
        ds = load_dataset(rest, split=split, root=root, channels=channels, target=target)
        return ds.subset(picked, name=f"{ds.name}#{','.join(picked)}")
    base, spec_target, spec_split = parse_spec(spec_str)
    split = split or spec_split
    target = target or spec_target
    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of {list(SPLITS)}, got {split!r}")
    key = base.lower()
    if key in DATASETS:
        data_root = Path(root) if root is not None else default_data_root()
        ds = _named(key, data_root / DATASETS[key][0], channels, target)
        stored = DATASETS[key][1]
        if split is not None:
            if stored is None:
                raise ConfigError(f"{key} is unlabelled and has no train/val/test split")
            names = load_split(stored)[split]
            if ds.info.get("target") == "nuclei" and key == "deepcell":  # nucleus labels on three fields only
                names = [n for n in names if n in set(ds.names)]
            ds = ds.subset(names, name=f"{ds.name}@{split}")
            ds.info["split"] = split
        return ds
    path = Path(base)
    if target is not None:
        raise ConfigError(f"target={target!r} only applies to {' and '.join(TARGETED)}")
    if not path.exists():
        raise InputError(f"unknown data set; use one of {sorted(DATASETS)}, a folder or a COCO .json file", path=path)
    if path.is_file() and path.suffix.lower() == ".json":
        ds = _coco(path, root, channels)
    elif path.is_dir():
        ds = _folder(path, channels)
    else:
        raise InputError("not a data set folder or COCO .json file", path=path)
    if split is not None:
        split_file = (path if path.is_dir() else path.parent) / "splits.json"
        if not split_file.is_file():
            raise ConfigError(f"split {split!r} requested but {split_file} does not exist")
        import json

        names = json.loads(split_file.read_text()).get(split, [])
        ds = ds.subset(names, name=f"{ds.name}@{split}")
    return ds


def _names(channels) -> set[str]:
    """Lower-case channel names of a channels argument (indices give no name)."""
    items = channels.split(",") if isinstance(channels, str) else [channels] if isinstance(channels, int) else channels
    return {c.strip().lower() if isinstance(c, str) else f"#{c}" for c in items}


def _named(key: str, folder: Path, channels, target) -> SegmentationDataset:
    if target is not None and key not in TARGETED:
        raise ConfigError(f"target={target!r} only applies to {' and '.join(TARGETED)}")
    if not folder.is_dir():
        raise InputError(f"data set {key!r} not found under the data root", path=folder)
    if key == "bbbc018":
        target = target or "cells"
        if target not in ("cells", "nuclei"):
            raise ConfigError(f"bbbc018: target must be 'cells' or 'nuclei', got {target!r}")
        idx = S.resolve_channels(
            channels,
            S.BBBC018_CHANNELS,
            ("actin", "DNA"),
            {"nuclei": "DNA", "nucleus": "DNA", "cell": "actin"},
            dataset=key,
        )
        loader = S.BBBC018Loader(folder, idx, target)
        names = S.bbbc018_names(folder)
        return SegmentationDataset(
            f"bbbc018:{target}",
            names,
            loader,
            [S.BBBC018_CHANNELS[i] for i in idx],
            {"root": str(folder), "target": target},
        )
    if key.startswith("dsb2018"):
        sub = folder / ("stage1_test" if key == "dsb2018-test" else "stage1_train")
        # the loader's one grey channel answers to the nuclear names the other sets use
        grey = channels is None or _names(channels) <= {"grey", "gray", "nuclei", "nucleus", "dna"}
        idx = None if grey else S.resolve_channels(channels, S.DSB_CHANNELS, (), dataset=key)
        loader = S.DSBLoader(sub, idx)
        names = S.dsb_names(sub)
        cn = ["grey"] if idx is None else [S.DSB_CHANNELS[i] for i in idx]
        return SegmentationDataset(key, names, loader, cn, {"root": str(sub)})
    if key == "aitslab":
        target = target or "cells"
        idx = S.resolve_channels(channels, S.AITSLAB_CHANNELS, ("cell", "nucleus"), S.AITSLAB_ALIASES, dataset=key)
        return SegmentationDataset(
            f"aitslab:{target}",
            S.aitslab_names(folder, "cells"),
            S.AitslabLoader(folder, "cells", idx, target),
            [S.AITSLAB_CHANNELS[i] for i in idx],
            {"root": str(folder), "target": target},
        )
    if key == "aitslab-nuclei":
        S.resolve_channels(channels, ("nucleus",), ("nucleus",), S.AITSLAB_ALIASES, dataset=key)
        return SegmentationDataset(
            key,
            S.aitslab_names(folder, "nuclei"),
            S.AitslabLoader(folder, "nuclei", [0]),
            ["nucleus"],
            {"root": str(folder)},
        )
    if key in _PAIRED:
        return _paired(key, folder, channels, target)
    if key == "koyuncu":
        idx = S.resolve_channels(
            channels, S.KOYUNCU_CHANNELS, ("blue",), {"nuclei": "blue", "DNA": "blue"}, dataset=key
        )
        return SegmentationDataset(
            key,
            S.koyuncu_names(folder),
            S.KoyuncuLoader(folder, idx),
            [S.KOYUNCU_CHANNELS[i] for i in idx],
            {"root": str(folder)},
        )
    kind = key.split("-", 1)[1]
    spec = S.CELLPROFILER[kind]
    cnames = list(spec["channels"])
    idx = S.resolve_channels(channels, cnames, spec["default"], spec["aliases"], dataset=key)
    return SegmentationDataset(
        key,
        S.cellprofiler_names(folder, kind),
        S.CellProfilerLoader(folder, kind, idx),
        [cnames[i] for i in idx],
        {"root": str(folder)},
    )


# Sources of image + label-TIFF pairs: (channel names, default channels, aliases).
_PAIRED = {
    "deepcell": (S.DEEPCELL_CHANNELS, ("phase", "nucleus"), S.DEEPCELL_ALIASES),
    "usiigaci": (S.USIIGACI_CHANNELS, ("phase",), S.USIIGACI_ALIASES),
    "coelho": (S.COELHO_CHANNELS, ("DNA",), S.COELHO_ALIASES),
    "tcells": (S.TCELLS_CHANNELS, ("membrane", "DAPI"), S.TCELLS_ALIASES),
}


def _paired(key: str, folder: Path, channels, target) -> SegmentationDataset:
    available, default, aliases = _PAIRED[key]
    idx = S.resolve_channels(channels, available, default, aliases, dataset=key)
    info = {"root": str(folder)}
    if key == "deepcell":
        target = target or "cells"
        if target not in TARGETS:
            raise ConfigError(f"deepcell: target must be 'cells' or 'nuclei', got {target!r}")
        loader, names, info["target"] = S.deepcell_loader(folder, idx, target), S.deepcell_names(folder, target), target
        key = f"deepcell:{target}"
    elif key == "usiigaci":
        loader, names = S.usiigaci_loader(folder, idx), S.usiigaci_names(folder)
    elif key == "coelho":
        loader, names = S.coelho_loader(folder, idx), S.coelho_names(folder)
    else:
        loader, names, info["partial_labels"] = S.tcells_loader(folder, idx), S.tcells_names(folder), True
    return SegmentationDataset(key, names, loader, [available[i] for i in idx], info)


def _folder(path: Path, channels) -> SegmentationDataset:
    images, labels, annotations, layout = S.scan_folder(path)
    if not images:
        raise InputError("no images found (expected images/ + masks/, *_img/*_masks pairs, or image files)", path=path)
    chans = None
    if channels is not None:
        chans = [channels] if isinstance(channels, (int, str)) else list(channels)
        chans = [int(c) if isinstance(c, str) and c.isdigit() else c for c in chans]
    loader = S.FolderLoader(images, labels, chans, None, annotations)
    names = list(images)
    first = loader(names[0])  # fail early on unreadable first file; gives the channel names
    return SegmentationDataset(
        path.name,
        names,
        loader,
        first.meta["channel_names"],
        {"root": str(path), "layout": layout, "labelled": len(labels)},
    )


def _coco(path: Path, root, channels) -> SegmentationDataset:
    coco = read_coco(path)
    image_dir = S.find_coco_image_dir(path, coco, Path(root) if root is not None else None)
    chans = None if channels is None else ([channels] if isinstance(channels, (int, str)) else list(channels))
    loader = S.CocoLoader(str(path), str(image_dir), chans, coco)
    names = [im["file_name"] for im in coco["images"]]
    return SegmentationDataset(path.stem, names, loader, [], {"root": str(image_dir), "coco": str(path)})


def load_samples(
    spec: str | os.PathLike,
    *,
    split: str | None = None,
    channels: Sequence[int | str] | int | str | None = None,
    limit: int | None = None,
) -> list:
    """The first ``limit`` samples (all when None) of :func:`load_dataset`, read eagerly.

    A convenience for scripts and tests that want a short list in memory.
    """
    ds = load_dataset(spec, split=split, channels=channels)
    n = len(ds) if limit is None else min(limit, len(ds))
    return [ds[i] for i in range(n)]
