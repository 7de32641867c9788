"""dvc stage `stats@<dataset>`: per-channel mean/std of the train split → data/stats/<dataset>.json."""

import argparse

from cnnpipe import paths, stage
from cnnpipe.data.stats import compute_stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    out = paths.stats_file(args.dataset)
    stage.clean_outputs(out)
    stats = compute_stats(paths.prepared_dir(args.dataset), out)
    print(f"{args.dataset}: mean {stats['mean']} std {stats['std']} over {stats['count']} train images")


if __name__ == "__main__":
    stage.run(main)
