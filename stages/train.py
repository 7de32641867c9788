"""dvc stage `train@<model>`: train models.<model> → models/<model>/{model.pt,checkpoint.pt,history.json}.

Reads: models.<model>.* (dataset, arch, normalize, augment, eval_transform, train.*), run.device,
run.amp, run.compile, run.resident_data, run.resident_max_fraction, run.max_epochs,
run.distributed; data/prepared/<dataset>/ and data/stats/<dataset>.json. Also
writes dvclive/<model>/ (learning curves) and plots/<model>/augmentation.png. A checkpoint made
with the same params and data is resumed from its last completed epoch.

With run.distributed asking for more than one process, this script launches itself under
torchrun (``torch.distributed.run``) as that many DDP workers and waits for them; a worker
(torchrun's RANK / LOCAL_RANK / WORLD_SIZE in its environment) trains its share, and rank 0
writes the outputs. On other nodes of a multi-node run, start the same command with NODE_RANK set.

The params above are read once, at start; if params.yaml holds other values for them at an
epoch's end (another `dvc exp run` in this workspace wrote its own), the run stops with one
line before writing anything more: queue experiments instead (`dvc exp run --queue`).
"""

import argparse
from pathlib import Path

from cnnpipe import stage
from cnnpipe.config.load import load_params, watch
from cnnpipe.config.run import parse_distributed
from cnnpipe.config.train import parse_config
from cnnpipe.train import distributed
from cnnpipe.train.loop import train_model


def watched_keys(model: str) -> list[str]:
    """The params.yaml keys train@<model> depends on (its `params:` in dvc.yaml)."""
    run_keys = ["run.device", "run.amp", "run.compile", "run.resident_data", "run.resident_max_fraction",
                "run.max_epochs", "run.distributed.nproc_per_node", "run.distributed.nnodes"]  # fmt: skip
    return [f"models.{model}", *run_keys]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model")
    args = parser.parse_args()
    values = load_params()
    changed = watch(watched_keys(args.model), values)
    settings = parse_distributed(values)
    config = parse_config(
        args.model, values
    )  # bad params (an augment typo too) fail here, before any worker starts
    if distributed.is_worker():
        distributed.run_worker(
            settings, config.device, lambda dist: train_model(config, dist=dist, params_changed=changed)
        )
    elif settings.world_size > 1:
        distributed.launch(settings, config.device, Path(__file__).resolve(), [args.model])
    else:
        train_model(config, params_changed=changed)


if __name__ == "__main__":
    stage.run(main)
