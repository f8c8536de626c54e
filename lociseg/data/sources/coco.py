"""COCO / LIVECell JSON files with their image folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InputError
from ...io import coco_to_labels, read_coco, read_image
from ..dataset import Sample


@dataclass
class CocoLoader:
    """Images of a COCO file with their labels rasterised from its annotations (parsed once, lazily)."""

    coco_path: str
    image_dir: str
    channels: list[int | str] | None = None
    _coco: dict | None = field(default=None, repr=False)

    def coco(self) -> dict:
        if self._coco is None:
            self._coco = read_coco(self.coco_path)
        return self._coco

    def __getstate__(self) -> dict:
        # the parsed JSON can be large (LIVECell): workers re-read it
        state = dict(self.__dict__)
        state["_coco"] = None
        return state

    def __call__(self, name: str) -> Sample:
        path = Path(self.image_dir) / name
        image = read_image(path, channels=self.channels)
        labels = coco_to_labels(self.coco(), name)
        if labels.shape != image.shape[1:]:
            raise InputError(f"COCO size {labels.shape} differs from image shape {image.shape[1:]}", path=path)
        meta = {
            "path": str(path),
            "label_path": self.coco_path,
            "channel_names": [f"c{i}" for i in range(image.shape[0])],
            "pixel_size": None,
        }
        return Sample(image=image, labels=labels, name=name, meta=meta)


def find_coco_image_dir(coco_path: Path, coco: dict, root: Path | None) -> Path:
    """Folder holding the COCO file's images: ``root``, else beside the JSON or its ``images/`` subfolder."""
    first = coco["images"][0]["file_name"] if coco.get("images") else None
    candidates = ([root] if root else []) + [coco_path.parent, coco_path.parent / "images"]
    for cand in candidates:
        if cand is not None and (first is None or (Path(cand) / first).is_file()):
            return Path(cand)
    raise InputError(
        f"images of the COCO file not found (looked for {first!r} beside it and in images/; pass root=)", path=coco_path
    )
