#!/usr/bin/env bash
# CI: what the napari, report and bioimage.io tests need beyond ".[dev]": an X server (Xvfb) and the
# libraries Qt 6's xcb platform plugin loads, headless Chromium (the HTML report as a browser shows it),
# napari with PyQt6 and napari-ome-zarr (opens every OME-Zarr lociseg writes), pytest-qt, and
# bioimageio.core (the `bioimageio test` command). Idempotent and quiet; run from .ci/run before pytest, then run
# pytest under `xvfb-run -a` with LOCISEG_REQUIRE_EXTRAS=1 so the napari tests get a display and
# fail rather than skip if any of this is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
    xvfb xauth libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0
    libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
    libxcb-image0 libxcb-shape0 libxcb-cursor0 libxcb-xkb1 chromium
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip install -q -e ".[napari]" napari-ome-zarr "pytest-qt>=4.4" "bioimageio.core>=0.9"
