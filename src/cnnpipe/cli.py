"""The ``cnnpipe`` command: helpers around the DVC pipeline.

cnnpipe sample [OUT] [--size DATASET.SPLIT=N ...] [--only DATASET ...]
cnnpipe info [--prepared data/prepared] [--stats data/stats]
cnnpipe check-metrics [--floors FILE] [--baseline REV] [--tolerance [METRIC=]DELTA ...]
                      [--rel-tolerance [METRIC=]FRACTION ...]
cnnpipe compare [MODEL ...] [--sort-by COLUMN] [--rev REV ... | --all] [--exp NAME ...]
cnnpipe seeds NAME [--queue-only | --show] [-j N] [-S KEY=VALUE ...] | --list
cnnpipe summary MODEL [MODEL ...] [--depth N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnpipe import paths, stage
from cnnpipe.errors import CnnpipeError, ParamError
from cnnpipe.gate import DEFAULT_TOLERANCE

DEFAULT_MIRROR = paths.SAMPLE_MIRROR


def _cmd_sample(args: argparse.Namespace) -> None:
    from cnnpipe.sample.mirror import write_sample_mirror
    from cnnpipe.sample.sizes import parse_size_overrides

    sizes = parse_size_overrides(args.size)
    out = write_sample_mirror(args.out, sizes=sizes, datasets=args.only or None, seed=args.seed)
    print(f"sample mirror written to {out}/ — use it with: dvc exp run -S data.mirror={out}")


def _cmd_prepare_folder(args: argparse.Namespace) -> None:
    from cnnpipe.data.prepare.imagefolder import prepare_imagefolder

    prepare_imagefolder(
        args.source,
        args.out,
        image_size=args.image_size,
        valid_fraction=args.valid_fraction,
        split_seed=args.split_seed,
        name=args.out.name,
    )


def _cmd_info(args: argparse.Namespace) -> None:
    from cnnpipe.data.arrays import load_meta

    prepared = Path(args.prepared)
    rows = []
    for meta_file in sorted(prepared.glob("*/classes.json")):
        meta = load_meta(meta_file.parent)
        stats_file = Path(args.stats) / f"{meta_file.parent.name}.json"
        stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        splits = meta["splits"]
        rows.append(
            (
                meta_file.parent.name,
                "×".join(map(str, meta["image_shape"])),
                f"{splits['train']}/{splits['valid']}/{splits['test']}",
                str(len(meta["classes"])) + (" attrs" if meta["label_type"] == "attributes" else ""),
                " ".join(f"{m:.4f}" for m in stats.get("mean", [])) or "-",
                " ".join(f"{s:.4f}" for s in stats.get("std", [])) or "-",
            )
        )
    if not rows:
        print(f"no prepared datasets under {prepared}/: run `make demo` or `dvc repro`")
        return
    header = ("dataset", "C×H×W", "train/valid/test", "classes", "mean", "std")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cmd_check_metrics(args: argparse.Namespace) -> None:
    from cnnpipe import gate

    if args.floors is None and args.baseline is None:
        raise ParamError("check-metrics needs --floors FILE, --baseline REV or both")
    problems = []
    if args.floors is not None:
        checks = gate.check_floors(gate.load_floors(args.floors), args.metrics_dir)
        print(gate.floors_table(checks))
        failed = [c for c in checks if not c.ok]
        if failed:
            names = ", ".join(f"{c.model}.{c.metric}" for c in failed)
            problems.append(f"{len(failed)} metric(s) below their floor in {args.floors}: {names}")
    if args.baseline is not None:
        tolerances = gate.parse_tolerances(args.tolerance)
        rel_tolerances = gate.parse_tolerances(args.rel_tolerance, 0.0, flag="--rel-tolerance")
        checks = gate.check_baseline(
            gate.dvc_metrics_diff(args.baseline), args.metrics_dir, tolerances, rel_tolerances=rel_tolerances
        )
        if not checks:
            raise CnnpipeError(
                f"no {args.metrics_dir}/<model>.json metrics in the workspace or at {args.baseline}: "
                "nothing to compare (run the pipeline first, or pass --metrics-dir)"
            )
        if args.floors is not None:
            print()
        print(gate.baseline_table(checks, args.baseline))
        new = sorted({c.model for c in checks if c.verdict == "new"})
        if new and len(new) == len({c.model for c in checks}):
            print(
                f"\n**No baseline metrics at {args.baseline}**: no {args.metrics_dir}/<model>.json is "
                "committed there, so nothing was compared with it"
                + (f" (only the floors in {args.floors} were checked)." if args.floors else ".")
            )
        elif new:
            print(f"\nNo baseline metrics at {args.baseline} for: {', '.join(new)} (not compared).")
        failed = [c for c in checks if not c.ok]
        if failed:
            names = ", ".join(f"{c.model}.{c.metric} ({c.verdict})" for c in failed)
            problems.append(f"{len(failed)} metric(s) regressed against {args.baseline}: {names}")
    if problems:
        raise CnnpipeError("; ".join(problems))


def _cmd_compare(args: argparse.Namespace) -> None:
    from cnnpipe.compare import compare

    print(
        compare(
            args.models,
            revs=args.rev or (),
            all_commits=args.all,
            sort_by=args.sort_by,
            experiments=args.exp or (),
        )
    )


def _cmd_seeds(args: argparse.Namespace) -> None:
    from cnnpipe import seeds

    if args.list:
        print(seeds.list_comparisons())
        return
    if args.name is None:
        raise CnnpipeError(f"name a comparison ({', '.join(seeds.COMPARISONS)}) or pass --list")
    comparison = seeds.get(args.name)
    if args.show:
        print(seeds.table(comparison))
        return
    print(seeds.run(comparison, args.set_param, queue_only=args.queue_only, jobs=args.jobs))


def _model_file(model: str) -> Path:
    """A model name (``mnist_cnn`` → models/mnist_cnn/model.pt) or a path to a model.pt."""
    path = Path(model)
    return path if path.suffix == ".pt" or path.is_file() else paths.model_file(model)


def _cmd_predict(args: argparse.Namespace) -> None:
    from cnnpipe.predict import PredictionError, format_results, predict_files

    results = predict_files(_model_file(args.model), args.images, device=args.device, top_k=args.top_k)
    print(format_results(results, logits=args.logits))
    failed = sum(isinstance(r, PredictionError) for r in results)
    if failed:
        raise CnnpipeError(f"{failed} of {len(results)} file(s) could not be predicted (see above)")


def _cmd_lr_find(args: argparse.Namespace) -> None:
    from cnnpipe.config.load import load_params
    from cnnpipe.config.train import parse_config
    from cnnpipe.train.lr_find import lr_find, save_lr_plot

    result = lr_find(
        parse_config(args.model, load_params()),
        start_lr=args.start,
        end_lr=args.end,
        num_lrs=args.num,
        batches_per_lr=args.batches,
    )
    plot = args.plot or paths.lr_find_plot(args.model)
    save_lr_plot(result, plot, title=f"{args.model}: learning-rate range test")
    print(f"suggested learning rate: {result.suggestion:.3g} (plot: {plot}); weights were restored")


def _cmd_plot_defs(args: argparse.Namespace) -> None:
    from cnnpipe import plotdefs
    from cnnpipe.config.load import load_params, model_names

    models = model_names(load_params())
    if not args.write:
        print(plotdefs.plots_block(models), end="")
    elif plotdefs.write_plots_block(args.dvc_yaml, models):
        print(f"{args.dvc_yaml}: learning-curve plots rewritten for {len(models)} models")
    else:
        print(f"{args.dvc_yaml}: learning-curve plots already match params.yaml's {len(models)} models")


def _cmd_summary(args: argparse.Namespace) -> None:
    from cnnpipe.config.load import load_params
    from cnnpipe.config.train import parse_config
    from cnnpipe.summary import format_summary, model_summary

    values = load_params(args.params)
    configs = [parse_config(name, values) for name in args.models]
    print("\n\n".join(format_summary(model_summary(config, depth=args.depth)) for config in configs))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``cnnpipe`` command."""
    parser = argparse.ArgumentParser(prog="cnnpipe", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sample = sub.add_parser("sample", help="write the offline sample mirror in upstream formats")
    sample.add_argument("out", nargs="?", type=Path, default=DEFAULT_MIRROR, help="mirror directory")
    sample.add_argument(
        "--size",
        action="append",
        default=[],
        metavar="DATASET.SPLIT=N",
        help="override a sample size, e.g. --size cifar10.train=50000 (repeatable)",
    )
    sample.add_argument("--only", action="append", metavar="DATASET", help="write only these datasets")
    sample.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    sample.set_defaults(func=_cmd_sample)

    folder = sub.add_parser(
        "prepare-folder", help="prepare a local ImageFolder directory or zip (train/, val/, test/)"
    )
    folder.add_argument("source", type=Path, help="directory or .zip laid out train/<class>/<image>")
    example = paths.prepared_dir("sea")
    folder.add_argument("out", type=Path, help=f"prepared directory to write, e.g. {example}")
    folder.add_argument("--image-size", type=int, nargs=2, default=[100, 100], metavar=("H", "W"))
    folder.add_argument("--valid-fraction", type=float, default=0.1, help="used when there is no val/")
    folder.add_argument("--split-seed", type=int, default=0)
    folder.set_defaults(func=_cmd_prepare_folder)

    info = sub.add_parser("info", help="summarize prepared datasets and their statistics")
    info.add_argument("--prepared", default=str(paths.PREPARED))
    info.add_argument("--stats", default=str(paths.STATS))
    info.set_defaults(func=_cmd_info)
    predict = sub.add_parser("predict", help="classify image files with a trained model")
    predict.add_argument("model", help="model name (models/<name>/model.pt) or path to a model.pt")
    predict.add_argument("images", nargs="+", type=Path, help="image files of any size or mode")
    predict.add_argument("--top-k", type=int, default=1, help="also show the next best classes")
    predict.add_argument(
        "--logits", action="store_true", help="also print the raw model outputs and their torch.max index"
    )
    predict.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto (default cpu)")
    predict.set_defaults(func=_cmd_predict)

    lr = sub.add_parser("lr-find", help="learning-rate range test for a model in params.yaml")
    lr.add_argument("model", help="a key of `models:` in params.yaml")
    lr.add_argument("--start", type=float, default=1e-7, help="lowest rate (default 1e-7)")
    lr.add_argument("--end", type=float, default=1.0, help="highest rate (default 1)")
    lr.add_argument("--num", type=int, default=50, help="log-spaced rates to try (default 50)")
    lr.add_argument("--batches", type=int, default=2, help="batches at each rate (default 2)")
    lr.add_argument("--plot", type=Path, help="PNG to write (default plots/<model>/lr_find.png)")
    lr.set_defaults(func=_cmd_lr_find)

    gate = sub.add_parser(
        "check-metrics",
        help="fail when test metrics fall below committed floors or regress against a baseline revision",
    )
    gate.add_argument("--floors", type=Path, help="YAML: model: {metric: minimum}")
    gate.add_argument(
        "--baseline",
        metavar="REV",
        help="git revision to compare with through `dvc metrics diff REV` (e.g. origin/main)",
    )
    gate.add_argument(
        "--tolerance",
        action="append",
        metavar="[METRIC=]DELTA",
        help="allowed absolute worsening against the baseline: DELTA for every metric or "
        f"METRIC=DELTA for one (repeatable; default {DEFAULT_TOLERANCE})",
    )
    gate.add_argument(
        "--rel-tolerance",
        action="append",
        metavar="[METRIC=]FRACTION",
        help="allowed worsening as a fraction of the baseline value, added to --tolerance "
        "(0.01 = 1 %%; repeatable like --tolerance; default 0)",
    )
    gate.add_argument("--metrics-dir", default=paths.METRICS, type=Path)
    gate.set_defaults(func=_cmd_check_metrics)

    defs = sub.add_parser(
        "plot-defs", help="print (or --write into dvc.yaml) the learning-curve plots of every model"
    )
    defs.add_argument("--write", action="store_true", help="rewrite dvc.yaml's generated plots block")
    defs.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    defs.set_defaults(func=_cmd_plot_defs)

    compare = sub.add_parser(
        "compare",
        help="one markdown table of the DVC experiments: the params that differ and the test metrics",
    )
    compare.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="models whose metrics (accuracy, loss, macro_f1, roc_auc) and params to show "
        "(default: the accuracy of every model with metrics, and every param that differs)",
    )
    compare.add_argument(
        "--sort-by",
        metavar="COLUMN",
        help="order the rows by a column: metrics best first (e.g. accuracy), params ascending",
    )
    compare.add_argument(
        "--rev",
        action="append",
        metavar="REV",
        help="experiments derived from this commit instead of HEAD (repeatable)",
    )
    compare.add_argument(
        "--all", action="store_true", help="experiments derived from every commit (overrides --rev)"
    )
    compare.add_argument(
        "--exp",
        action="append",
        metavar="NAME",
        help="only the experiments of this name, in the order given (repeatable)",
    )
    compare.set_defaults(func=_cmd_compare)

    seeds = sub.add_parser(
        "seeds",
        help="run one of the sources' comparisons as named DVC experiments and print its table",
    )
    seeds.add_argument("name", nargs="?", metavar="NAME", help="the comparison (see --list)")
    seeds.add_argument("--list", action="store_true", help="list the comparisons and their variants")
    mode = seeds.add_mutually_exclusive_group()
    mode.add_argument(
        "--queue-only", action="store_true", help="queue the experiments without running the queue"
    )
    mode.add_argument("--show", action="store_true", help="print the table of the experiments already run")
    seeds.add_argument("-j", "--jobs", type=int, default=1, help="experiments run in parallel (default 1)")
    seeds.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a DVC -S override for every variant, after its own (repeatable; e.g. -S run.max_epochs=2)",
    )
    seeds.set_defaults(func=_cmd_seeds)

    summary = sub.add_parser(
        "summary",
        help="every layer of a model of params.yaml: output shape, parameters, trainable or frozen",
    )
    summary.add_argument("models", nargs="+", metavar="MODEL", help="keys of `models:` in params.yaml")
    summary.add_argument(
        "--depth", type=int, default=2, help="module nesting shown (default 2; 1 = the top-level blocks)"
    )
    summary.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file to read")
    summary.set_defaults(func=_cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``cnnpipe`` console script."""
    args = build_parser().parse_args(argv)
    stage.run(lambda: args.func(args))


if __name__ == "__main__":
    main()
