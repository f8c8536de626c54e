"""Copy a trained checkpoint into the shipped-model registry (lociseg/models/pretrained/NAME/).

Writes MODEL_CARD.md (training data, command, held-out metrics, sha256) and
records the weights' SHA-256 in manifest.json; refuses weights over 16 MiB.

    python benchmarks/package_model.py runs/nuclei NAME --description "..." --command "lociseg train ..."
"""

from __future__ import annotations

import argparse
import sys

from lociseg.errors import LociError
from lociseg.models.pretrained import verify_model
from lociseg.models.pretrained.package import package_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", help="checkpoint folder, or run folder with best/ or last/")
    ap.add_argument("name", help="registry name, e.g. nuclei or cells")
    ap.add_argument("--description", default="", help="one paragraph for the model card")
    ap.add_argument("--command", default="", help="the lociseg train command that made it")
    ap.add_argument("--registry", default=None, help="registry folder (default: the package's)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing model of that name")
    args = ap.parse_args(argv)
    try:
        dest = package_model(
            args.run_dir,
            args.name,
            registry=args.registry,
            description=args.description,
            command=args.command,
            overwrite=args.overwrite,
        )
        digest = verify_model(dest)
    except LociError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"packaged {args.name!r} into {dest} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
