"""dvc stage `prepare_folder@<dataset>`: a local ImageFolder directory or zip → data/prepared/<dataset>/.

Reads: datasets.<dataset>.path, .image_size, .valid_fraction, .split_seed, data.max_member_mb,
data.max_ratio.
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config import load as params
from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.prepare import prepare_imagefolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    out = Path("data/prepared") / args.dataset
    stage.clean_outputs(out)
    all_params = params.load_params()
    key = f"datasets.{args.dataset}"
    prepare_imagefolder(
        Path(params.get(all_params, f"{key}.path")),
        out,
        image_size=params.get(all_params, f"{key}.image_size"),
        valid_fraction=params.get(all_params, f"{key}.valid_fraction"),
        split_seed=params.get(all_params, f"{key}.split_seed"),
        name=args.dataset,
        limits=ArchiveLimits.from_params(all_params),
    )


if __name__ == "__main__":
    stage.run(main)
