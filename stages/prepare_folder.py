"""dvc stage `prepare_folder@<dataset>`: a local ImageFolder directory or zip → data/prepared/<dataset>/.

Reads: datasets.<dataset>.path, .image_size, .valid_fraction, .split_seed, data.max_member_mb,
data.max_ratio.
"""

import argparse
from pathlib import Path

from cnnpipe import paths, stage
from cnnpipe.config.data import parse_data, parse_dataset
from cnnpipe.config.load import load_params
from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.prepare.imagefolder import prepare_imagefolder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    out = paths.prepared_dir(args.dataset)
    stage.clean_outputs(out)
    values = load_params()
    dataset = parse_dataset(values, args.dataset)
    data = parse_data(values, read=("max_member_mb", "max_ratio"))
    prepare_imagefolder(
        Path(dataset.need("path")),
        out,
        image_size=dataset.need("image_size"),
        valid_fraction=dataset.need("valid_fraction"),
        split_seed=dataset.need("split_seed"),
        name=args.dataset,
        limits=ArchiveLimits(**data.archive_limits()),
    )


if __name__ == "__main__":
    stage.run(main)
