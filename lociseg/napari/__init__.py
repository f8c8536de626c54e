"""napari plugin (manifest ``napari.yaml``): segment widget, weak-annotation review, adapt-and-correct widget, reader, sample data.

The logic lives in :mod:`lociseg.napari.logic` (plain NumPy, tested without
napari); :mod:`lociseg.napari._widgets` only wires it to napari layers.
"""
