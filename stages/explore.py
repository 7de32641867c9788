"""dvc stage `explore@<dataset>`: pictures of a prepared dataset → plots/datasets/<dataset>/*.png.

Reads data/prepared/<dataset>/ (no params). Writes gallery.png (the first images of every class,
or of an attribute set with their attributes), filters.png (hand-made edge and Sobel filters and
2×2 max pooling on one image) and convolution.png (cross-correlation vs convolution, and the
sources' worked numbers); see cnnpipe.explore.
"""

import argparse

from cnnpipe import paths, stage
from cnnpipe.explore import explore_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset")
    args = parser.parse_args()
    stage.clean_outputs(paths.dataset_plots_dir(args.dataset))
    explore_dataset(args.dataset)


if __name__ == "__main__":
    stage.run(main)
