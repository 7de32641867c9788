"""dvc stage `prepare*@<dataset>`: decode data/raw/<dataset>/ into data/prepared/<dataset>/.

Reads: datasets.<dataset>.* (valid_first, or image_size / valid_fraction / split_seed, and
test_fraction for a set with no split folders),
data.max_member_mb, and for the sets that come in zips data.max_ratio.
"""

import argparse

from cnnpipe import paths, stage
from cnnpipe.config.data import parse_data, parse_dataset
from cnnpipe.config.load import load_params
from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.prepare.dispatch import prepare_dataset
from cnnpipe.data.sources import get_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    out = paths.prepared_dir(args.dataset)
    stage.clean_outputs(out)
    values = load_params()
    in_zips = get_source(args.dataset).kind in ("celeba", "imagefolder", "classfolders")
    data = parse_data(values, read=("max_member_mb", "max_ratio") if in_zips else ("max_member_mb",))
    dataset = parse_dataset(values, args.dataset)
    limits = ArchiveLimits(**data.archive_limits())
    prepare_dataset(args.dataset, paths.raw_dir(args.dataset), out, **dataset.as_mapping(), limits=limits)


if __name__ == "__main__":
    stage.run(main)
