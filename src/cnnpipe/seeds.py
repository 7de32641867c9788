"""The sources' variant runs as one-command comparisons (``cnnpipe seeds NAME``).

Each comparison below is data: the runs one source text makes side by side, each a
:class:`Variant` with the DVC experiment name it runs as, the model it trains and evaluates
(the stage ``evaluate@<model>`` and what it needs), and its ``-S`` overrides in DVC's Hydra
syntax (``models.sea_cnn.augment=[]``). ``cnnpipe seeds NAME`` queues every variant with
``dvc exp run --queue -n <name> -S … evaluate@<model>``, runs the queue in the foreground
(``dvc exp run --run-all``) and prints the comparison table (:func:`cnnpipe.compare.variants_table`).

Where a source compares two *models* (cifar2's shallow and deep fully connected networks,
Fashion-MNIST's DNN and CNN), each model is its own variant: one experiment per model, each
running only that model's stages. Every row then is one run, like the others, and the table
shows each row's own model (a ``model`` column), its params with ``models.<model>.`` left out
(so ``arch.hidden`` lines up across the two models) and its test metrics. One experiment
training both would give one row holding both models' metrics, and could not say which
params belong to which. The horses comparison mixes both kinds: plain is ``horses_cnn`` as params.yaml has it,
augmented is ``horses_cnn_aug`` (params.yaml keeps its augmentation, one copy), affine is
``horses_cnn_aug`` with its ``augment`` replaced by the source's alternative.

Extra ``-S`` overrides (``cnnpipe seeds sea -S run.max_epochs=2``) go to every variant after
its own, so they win where both set a key. A key a variant sets is what the comparison is
about: overriding it makes the variants alike.

Names: DVC keeps one experiment per name and commit, and refuses a second one. Running a
comparison again on the same commit therefore replaces its earlier experiments: those
completed are removed (``dvc exp remove`` by their full ref, so same-named experiments of
other commits stay), those still queued or failed leave the queue (``dvc queue remove``), and
the command says so. A variant still running stops it with an error naming ``dvc queue kill``.
``dvc exp run --run-all`` runs the whole queue: experiments queued by other means run too (the
command lists them first).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnpipe.compare import Row, caption_variants, exp_show, rows_from_exp_show, to_markdown, variants_table
from cnnpipe.errors import CnnpipeError


@dataclass(frozen=True)
class Variant:
    """One run of a comparison: a named DVC experiment of one model."""

    name: str  # the DVC experiment name (unique per commit)
    model: str  # key of `models:` in params.yaml; the experiment runs evaluate@<model>
    overrides: tuple[str, ...] = ()  # `-S` overrides, DVC's Hydra syntax
    about: str = ""  # what the source ran


@dataclass(frozen=True)
class Comparison:
    """The runs one source makes side by side, and the numbers it published for them."""

    name: str
    title: str
    variants: tuple[Variant, ...]
    reference: str  # the published results (SPEC)

    @property
    def models(self) -> list[str]:
        """The models the comparison trains, in variant order."""
        return list(dict.fromkeys(v.model for v in self.variants))


def _sea(*overrides: str) -> tuple[str, ...]:
    return tuple(f"models.sea_cnn.{o}" for o in overrides)


# SPEC 4: the augmented variant's alternative, torchvision's RandomAffine(0, (0.2, 0.2), (0.8, 1.2), 20),
# on the 300x300 originals resized to the network's 150x150.
HORSES_AFFINE = "[{op:resize,size:[150,150]},{op:affine,translate:[0.2,0.2],scale:[0.8,1.2],shear:20}]"

COMPARISONS: dict[str, Comparison] = {
    c.name: c
    for c in (
        Comparison(
            "sea",
            "sea creatures (notebook): dropout and augmentation",
            (
                Variant(
                    "sea-nodrop-20",
                    "sea_cnn",
                    _sea("arch.dropout=0.0", "augment=[]", "train.epochs=20"),
                    "no dropout, no augmentation, 20 epochs",
                ),
                Variant(
                    "sea-drop-20",
                    "sea_cnn",
                    _sea("arch.dropout=0.8", "augment=[]", "train.epochs=20"),
                    "dropout 0.8, no augmentation, 20 epochs",
                ),
                Variant(
                    "sea-drop-aug-30",
                    "sea_cnn",
                    _sea("arch.dropout=0.8", "train.epochs=30"),
                    "dropout 0.8 and the notebook's augmentation (params.yaml's), 30 epochs",
                ),
            ),
            "175/175 train and 38–39/50 test; 27–36/50; 38–41/50",
        ),
        Comparison(
            "horses",
            "horses or humans (book): augmentation",
            (
                Variant("horses-plain", "horses_cnn", (), "no augmentation (the originals resized to 150)"),
                Variant(
                    "horses-aug",
                    "horses_cnn_aug",
                    (),
                    "horizontal flip, rotation ±20°, random resized crop 150",
                ),
                Variant(
                    "horses-affine",
                    "horses_cnn_aug",
                    (f"models.horses_cnn_aug.augment={HORSES_AFFINE}",),
                    "affine: translate 0.2, scale 0.8–1.2, shear 20°",
                ),
            ),
            "plain: 99 %+ train, about 88 % validation after 10 epochs; augmented: train 99 % to 94 %, "
            "validation much lower at 64 % after 15 epochs",
        ),
        Comparison(
            "inception",
            "Inception-V3 transfer on horses or humans (book): the new head with and without dropout",
            (
                Variant(
                    "inception-plain-head",
                    "inception_horses",
                    ("models.inception_horses.arch.dropout=0.0",),
                    "2048→1024→2 head",
                ),
                Variant(
                    "inception-dropout-head",
                    "inception_horses",
                    ("models.inception_horses.arch.dropout=0.5",),
                    "dropout 0.5 before each linear of the head",
                ),
            ),
            "3 epochs: train 99 %+, validation 95 %+",
        ),
        Comparison(
            "cifar2",
            "CIFAR-2 airplane/bird (book): shallow and deep fully connected networks",
            (
                Variant("cifar2-shallow", "cifar2_fc", (), "3072→512→2, tanh"),
                Variant("cifar2-deep", "cifar2_fc_deep", (), "3072→1024→512→128→2, tanh"),
            ),
            "100 epochs: 79.4 % validation; 80.2 % validation, 99.8 % train",
        ),
        Comparison(
            "fashion",
            "Fashion-MNIST (book): the fully connected baseline and the CNN",
            (
                Variant("fashion-dnn", "fashion_dnn", (), "784→128→10 (101,770 params)"),
                Variant("fashion-cnn", "fashion_cnn", (), "two conv blocks, 2304→128→10 (333,898 params)"),
            ),
            "CNN: 91.31 % test after 50 epochs",
        ),
        Comparison(
            "mnist",
            "MNIST (book): dropout before the last linear",
            (
                Variant("mnist-dropout", "mnist_cnn", ("models.mnist_cnn.arch.dropout=0.5",), "dropout 0.5"),
                Variant(
                    "mnist-no-dropout", "mnist_cnn", ("models.mnist_cnn.arch.dropout=0.0",), "no dropout"
                ),
            ),
            "dropout 0.5, 20 epochs: 99.14 % test (validation 99.07 %)",
        ),
    )
}


def get(name: str) -> Comparison:
    """The comparison called ``name``, or a one-line error listing them."""
    if name not in COMPARISONS:
        raise CnnpipeError(f"unknown comparison {name!r}; one of: {', '.join(COMPARISONS)}")
    return COMPARISONS[name]


def override_key(override: str) -> str:
    """The dotted params key of a ``-S`` override (``a.b=[]``: ``a.b``)."""
    key, sep, _ = override.partition("=")
    if not sep and not override.startswith("~"):
        raise CnnpipeError(f"-S {override!r}: expected KEY=VALUE, e.g. -S run.max_epochs=2")
    return key.lstrip("+~")


def merged_overrides(variant: Variant, extra: Sequence[str]) -> list[str]:
    """The variant's overrides then ``extra``, one per key: where both set a key, ``extra`` wins."""
    merged: dict[str, str] = {}
    for override in (*variant.overrides, *extra):
        key = override_key(override)
        merged.pop(key, None)  # re-inserted last: the order DVC applies them in
        merged[key] = override
    return list(merged.values())


def queue_command(variant: Variant, extra: Sequence[str] = ()) -> list[str]:
    """``dvc exp run --queue -n NAME -S … evaluate@MODEL`` for one variant."""
    sets = [arg for override in merged_overrides(variant, extra) for arg in ("-S", override)]
    return ["exp", "run", "--queue", "-n", variant.name, *sets, f"evaluate@{variant.model}"]


def list_comparisons() -> str:
    """``cnnpipe seeds --list``: every comparison, its variants and what the source reported."""
    lines = []
    for c in COMPARISONS.values():
        lines.append(f"{c.name}: {c.title} (models: {', '.join(c.models)})")
        for v in c.variants:
            sets = " ".join(f"-S {o}" for o in v.overrides) or "(params.yaml as it is)"
            lines += [f"  {v.name:<22} {v.model:<16} {v.about}", f"  {'':<22} {sets}"]
        lines.append(f"  source: {c.reference}")
    return "\n".join(lines)


def _dvc(args: Sequence[str], cwd: str | Path | None, what: str) -> None:
    """Run ``python -m dvc ARGS`` with its output on this terminal; a failure is one error line."""
    sys.stdout.flush()
    if subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd).returncode != 0:
        raise CnnpipeError(f"`dvc {' '.join(args)}` failed while {what} (DVC's reason is above)")


def _head(cwd: str | Path | None) -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise CnnpipeError("DVC experiments need a git commit to start from: commit first (git commit)")
    return result.stdout.strip()


def _rows(cwd: str | Path | None) -> list[Row]:
    return rows_from_exp_show(exp_show(cwd=cwd))


def _named(rows: Sequence[Row], names: Sequence[str]) -> list[Row]:
    return [r for r in rows if r.kind == "experiment" and r.name in names]


def clear_earlier(comparison: Comparison, cwd: str | Path | None = None) -> list[str]:
    """Remove this commit's experiments named like the comparison's variants; their names.

    Completed ones go by their full ref (``refs/exps/<sha[:2]>/<sha[2:]>/<name>``), queued or
    failed ones leave the queue by their stash revision. A running one raises.
    """
    names = [v.name for v in comparison.variants]
    earlier = _named(_rows(cwd), names)
    running = [r.name for r in earlier if r.state in ("running", "active")]
    if running:
        raise CnnpipeError(
            f"experiment(s) {', '.join(running)} of this comparison are running: wait for them, "
            f"or stop them with `dvc queue kill {' '.join(running)}`"
        )
    head = _head(cwd)
    done = [f"refs/exps/{head[:2]}/{head[2:]}/{r.name}" for r in earlier if not r.state]
    queued = [r.sha for r in earlier if r.state]
    if done:
        _dvc(["exp", "remove", "-q", *done], cwd, "removing this comparison's earlier experiments")
    if queued:
        _dvc(["queue", "remove", "-q", *queued], cwd, "removing this comparison's earlier queued experiments")
    found = {r.name for r in earlier}
    return [name for name in names if name in found]


def table(comparison: Comparison, cwd: str | Path | None = None) -> str:
    """The caption and markdown table of the comparison's experiments on this commit."""
    rows = _rows(cwd)
    variants = [(v.name, v.model) for v in comparison.variants]
    df = variants_table(rows, variants)
    head = f"{comparison.title}\n{caption_variants(df, variants)}"
    return f"{head}\n\n{to_markdown(df)}\n\nsource: {comparison.reference}"


def run(
    comparison: Comparison,
    extra: Sequence[str] = (),
    *,
    queue_only: bool = False,
    jobs: int = 1,
    cwd: str | Path | None = None,
) -> str:
    """Queue the comparison's variants, run the queue and return the table (see the module docstring)."""
    for override in extra:
        override_key(override)
    replaced = clear_earlier(comparison, cwd)
    if replaced:
        print(
            f"replacing this commit's earlier experiment(s) {', '.join(replaced)} (one per name and commit)"
        )
    for variant in comparison.variants:
        _dvc(queue_command(variant, extra), cwd, f"queueing {variant.name}")
    names = [v.name for v in comparison.variants]
    if queue_only:
        return (
            f"queued {', '.join(names)}: run them with `dvc queue start` (or `dvc exp run --run-all`), "
            f"then show the table with `cnnpipe seeds {comparison.name} --show`"
        )
    others = [r.name or r.rev for r in _rows(cwd) if r.state == "queued" and r.name not in names]
    if others:
        print(f"the queue also holds {', '.join(others)}: they run too")
    _dvc(["exp", "run", "--run-all", "--jobs", str(jobs)], cwd, "running the queue")
    result = table(comparison, cwd)
    rows = _named(_rows(cwd), names)
    ok = {r.name for r in rows if not r.state and r.metrics}
    failed = [n for n in names if n not in ok]
    if failed:
        print(result)
        logs = " ".join(f"`dvc queue logs {n}`" for n in failed)
        raise CnnpipeError(f"experiment(s) {', '.join(failed)} did not complete; their output: {logs}")
    return result


def params_keys(params: Mapping[str, Any], key: str) -> bool:
    """Whether the dotted ``key`` names a value in the nested ``params`` (lists are values)."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
