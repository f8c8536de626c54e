"""segment_folder's jobs and task: library functions that a Dask worker can run (no CLI code, no closures)."""

from __future__ import annotations

import pickle

import numpy as np
import tifffile

from lociseg.scale_out import folder


def test_jobs_pickle_by_reference_and_read_the_image(tmp_path, rng):
    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 255, (64, 48), dtype=np.uint8))
    jobs = folder.image_jobs([str(tmp_path)])
    assert [(name, src) for name, src, _ in jobs] == [("a", str(tmp_path / "a.tif"))]
    name, src, read = pickle.loads(pickle.dumps(jobs[0]))  # plain pickle: a closure would fail here
    image, names = read()
    assert image.shape == (1, 64, 48) and names is None


def test_what_a_worker_runs_is_library_code():
    for fn in (folder.segment_file, folder._worker_segmenter, folder._read_file, folder._read_item):
        assert fn.__module__ == "lociseg.scale_out.folder"
    pickle.dumps(folder.segment_file)  # by reference
