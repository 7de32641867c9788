"""dvc stage `train@<model>`: train models.<model> → models/<model>/{model.pt,checkpoint.pt,history.json}.

Reads: models.<model>.* (dataset, arch, normalize, augment, eval_transform, train.*), run.device,
run.max_epochs; data/prepared/<dataset>/ and data/stats/<dataset>.json. Also writes
dvclive/<model>/ (learning curves) and plots/<model>/augmentation.png. A checkpoint made with
the same params and data is resumed from its last completed epoch.
"""

import argparse

from cnnpipe import params, stage
from cnnpipe.train.loop import train_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    args = parser.parse_args()
    train_model(args.model, params.load_params())


if __name__ == "__main__":
    stage.run(main)
