"""dvc stage `prepare*@<dataset>`: decode data/raw/<dataset>/ into data/prepared/<dataset>/.

Reads: datasets.<dataset>.* (valid_first, or image_size / valid_fraction / split_seed),
data.max_member_mb, and for the sets that come in zips data.max_ratio.
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config import load as params
from cnnpipe.data.archives import ArchiveLimits
from cnnpipe.data.prepare import prepare_dataset
from cnnpipe.data.sources import get_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    out = Path("data/prepared") / args.dataset
    stage.clean_outputs(out)
    all_params = params.load_params()
    dataset_params = params.get(all_params, f"datasets.{args.dataset}", default={}) or {}
    in_zips = get_source(args.dataset).kind in ("celeba", "imagefolder")
    limits = ArchiveLimits.from_params(all_params, ratio=in_zips)
    prepare_dataset(args.dataset, Path("data/raw") / args.dataset, out, dataset_params, limits=limits)


if __name__ == "__main__":
    stage.run(main)
