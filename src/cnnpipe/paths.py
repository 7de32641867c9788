"""The one copy of the pipeline's output layout (dvc.yaml spells the same paths for DVC).

Every path is relative to ``root``, the repository root (``.`` when a stage runs)::

    data/raw/<dataset>/                  upstream files (download)
    data/prepared/<dataset>/             prepared splits and classes.json (prepare, subset)
    data/stats/<dataset>.json            per-channel mean/std of the train split (stats)
    data/sample_mirror/                  the offline sample mirror (cnnpipe sample)
    .cache/downloads/                    partial downloads, resumed by the next run (download)
    models/<model>/model.pt              the trained bundle (train)
    models/<model>/checkpoint.pt         the last completed epoch, for resuming (train)
    models/<model>/history.json          one entry per epoch (train)
    dvclive/<model>/                     learning curves (plots/metrics/…) and their summary (metrics.json)
    plots/<model>/augmentation.png       what the train pipeline does to a few images (train)
    plots/<model>/lr_find.png            cnnpipe lr-find's sweep
    plots/<model>/{predictions,roc,per_class}.csv and plots/<model>/figures/   (evaluate)
    plots/datasets/<dataset>/            pictures of a prepared dataset (explore)
    metrics/<model>.json                 DVC metrics of a model (evaluate)
    metrics/<model>.info.json            what those metrics measured (evaluate)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(".")
RAW = Path("data") / "raw"
PREPARED = Path("data") / "prepared"
STATS = Path("data") / "stats"
SAMPLE_MIRROR = Path("data") / "sample_mirror"
PARTIAL_DOWNLOADS = Path(".cache") / "downloads"  # resumable .part files (not a DVC output)
MODELS = Path("models")
DVCLIVE = Path("dvclive")
PLOTS = Path("plots")
METRICS = Path("metrics")
#: The CSV files of plots/<model>/ that evaluate writes (DVC plot data).
PREDICTIONS_CSV, ROC_CSV, PER_CLASS_CSV = "predictions.csv", "roc.csv", "per_class.csv"
EVAL_PLOT_FILES = (PREDICTIONS_CSV, ROC_CSV, PER_CLASS_CSV)
#: The pictures of plots/datasets/<dataset>/ that explore writes.
GALLERY_PNG, FILTERS_PNG, CONVOLUTION_PNG = "gallery.png", "filters.png", "convolution.png"
DATASET_PLOT_FILES = (GALLERY_PNG, FILTERS_PNG, CONVOLUTION_PNG)


def raw_dir(dataset: str, root: Path = ROOT) -> Path:
    """``data/raw/<dataset>/``: the upstream files."""
    return Path(root) / RAW / dataset


def prepared_dir(dataset: str, root: Path = ROOT) -> Path:
    """``data/prepared/<dataset>/``: the prepared splits."""
    return Path(root) / PREPARED / dataset


def stats_file(dataset: str, root: Path = ROOT) -> Path:
    """``data/stats/<dataset>.json``: mean/std of the train split."""
    return Path(root) / STATS / f"{dataset}.json"


def model_dir(model: str, root: Path = ROOT) -> Path:
    """``models/<model>/``."""
    return Path(root) / MODELS / model


def model_file(model: str, root: Path = ROOT) -> Path:
    """``models/<model>/model.pt``: the trained bundle."""
    return model_dir(model, root) / "model.pt"


def live_dir(model: str, root: Path = ROOT) -> Path:
    """``dvclive/<model>/``: dvclive's logs of a model's training."""
    return Path(root) / DVCLIVE / model


def live_curves_dir(model: str, root: Path = ROOT) -> Path:
    """``dvclive/<model>/plots/metrics/``: one ``<split>/<metric>.tsv`` per learning curve."""
    return live_dir(model, root) / "plots" / "metrics"


def live_summary_file(model: str, root: Path = ROOT) -> Path:
    """``dvclive/<model>/metrics.json``: the last epoch's train and validation numbers."""
    return live_dir(model, root) / "metrics.json"


def plots_dir(model: str, root: Path = ROOT) -> Path:
    """``plots/<model>/``: a model's DVC plot data and figures."""
    return Path(root) / PLOTS / model


def figures_dir(model: str, root: Path = ROOT) -> Path:
    """``plots/<model>/figures/``: evaluate's PNG figures."""
    return plots_dir(model, root) / "figures"


def lr_find_plot(model: str, root: Path = ROOT) -> Path:
    """``plots/<model>/lr_find.png``: cnnpipe lr-find's sweep."""
    return plots_dir(model, root) / "lr_find.png"


def dataset_plots_dir(dataset: str, root: Path = ROOT) -> Path:
    """``plots/datasets/<dataset>/``: explore's pictures of a prepared dataset."""
    return Path(root) / PLOTS / "datasets" / dataset


def metrics_file(model: str, root: Path = ROOT) -> Path:
    """``metrics/<model>.json``: a model's DVC metrics."""
    return Path(root) / METRICS / f"{model}.json"


def info_file(model: str, root: Path = ROOT) -> Path:
    """``metrics/<model>.info.json``: what a model's metrics measured."""
    return Path(root) / METRICS / f"{model}.info.json"


@dataclass(frozen=True)
class RunPaths:
    """Where a model's training run reads and writes."""

    prepared: Path  # data/prepared/<dataset>/
    stats: Path  # data/stats/<stats_from>.json (the model's own dataset unless stated)
    model_dir: Path  # models/<name>/
    live_dir: Path  # dvclive/<name>/
    plots_dir: Path  # plots/<name>/

    @classmethod
    def of(cls, root: Path, name: str, dataset: str, stats_from: str | None = None) -> RunPaths:
        """The paths of model ``name`` trained on ``dataset`` (statistics of ``stats_from``)."""
        return cls(
            prepared=prepared_dir(dataset, root),
            stats=stats_file(stats_from or dataset, root),
            model_dir=model_dir(name, root),
            live_dir=live_dir(name, root),
            plots_dir=plots_dir(name, root),
        )

    @property
    def checkpoint(self) -> Path:
        """``models/<name>/checkpoint.pt``."""
        return self.model_dir / "checkpoint.pt"

    @property
    def model_file(self) -> Path:
        """``models/<name>/model.pt``."""
        return self.model_dir / "model.pt"

    @property
    def history_file(self) -> Path:
        """``models/<name>/history.json``."""
        return self.model_dir / "history.json"

    @property
    def augmentation_plot(self) -> Path:
        """``plots/<name>/augmentation.png``."""
        return self.plots_dir / "augmentation.png"
