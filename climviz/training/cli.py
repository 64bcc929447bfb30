"""``climviz train CONFIG.yaml``: train from a YAML/JSON config, on Ray or in-process.

Examples
--------
::

    climviz train config.yaml                                  # local Ray, all CPUs
    climviz train config.yaml --address auto --num-workers 4   # the cluster on this machine
    climviz train config.yaml --address ray://head:10001 --storage-path /shared/runs
    climviz train config.yaml --name run1 --resume             # continue run1
    climviz train config.yaml --set epochs=20 --set lr=2e-3    # override config keys
    climviz train config.yaml --no-ray                         # one process, for debugging
    climviz train config.yaml --submit http://127.0.0.1:8265   # as a Ray Job; prints its id

The last line printed on success is ``CLIMVIZ_RESULT {json}`` (the TrainResult as
JSON: checkpoint paths, metrics records, wall time), which
:class:`climviz.training.jobs.TrainingJob` reads back from a job's logs.

This module keeps its imports light; torch and ray load inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from climviz.training.result import RESULT_PREFIX, result_from_json, result_to_json

__all__ = [
    "RESULT_PREFIX",
    "build_parser",
    "main",
    "register",
    "result_from_json",
    "result_to_json",
    "run",
]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="TrainConfig as a .yaml/.yml/.json file")
    p.add_argument("--data", nargs="+", default=None, metavar="PATH",
                   help="training run(s): files or globs (default: 'data' in the config)")
    p.add_argument("--address", default=None,
                   help="Ray cluster: 'auto', 'host:port' (GCS) or 'ray://host:10001' "
                        "(default: start a local Ray, or $RAY_ADDRESS)")
    p.add_argument("--num-workers", type=int, default=None, metavar="N",
                   help="training processes (default: one per CPU, or per GPU with --use-gpu)")
    p.add_argument("--use-gpu", action="store_true", help="one GPU per worker (NCCL)")
    p.add_argument("--cpus-per-worker", type=float, default=None, metavar="C",
                   help="Ray CPUs (and torch threads) per worker")
    p.add_argument("--storage-path", default=None, metavar="DIR",
                   help="where runs are stored (default ./climviz_runs; shared by all nodes)")
    p.add_argument("--name", default=None, help="run name (default <model>-<preset>-<time>)")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue the run --name from its latest checkpoint, or start from "
                        "CHECKPOINT")
    p.add_argument("--max-failures", type=int, default=0, metavar="K",
                   help="worker failures to recover from, from the last checkpoint (-1: any)")
    p.add_argument("--no-ray", action="store_true",
                   help="run the engine in this process (no Ray), for debugging")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (VALUE parsed as YAML), repeatable")
    p.add_argument("--submit", default=None, metavar="DASHBOARD_URL",
                   help="submit as a Ray Job to this dashboard (e.g. http://127.0.0.1:8265) "
                        "and print the job id instead of waiting")
    p.add_argument("--result-json", default=None, metavar="PATH",
                   help="also write the result as JSON to PATH")
    p.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                   help="seconds to reach the Ray cluster before failing")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    """Standalone parser (``python -m climviz.training.cli CONFIG ...``)."""
    p = argparse.ArgumentParser(prog="climviz train", description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    return p


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand to ``climviz``'s argument parser."""
    p = subparsers.add_parser("train", help="train a segmentation model from a YAML config "
                                            "(Ray data-parallel, or --no-ray)",
                              description=__doc__.split("\n\n")[0])
    _add_arguments(p)
    p.set_defaults(func=run)


def _overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    from climviz.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set epochs=20")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: value {value!r} is not valid YAML ({e})") from e
        if isinstance(parsed, str):
            try:  # YAML 1.1 reads '2e-3' as text; a number is meant
                parsed = float(parsed)
            except ValueError:
                pass
        out[key.strip()] = parsed
    return out


def run(args: argparse.Namespace) -> int:
    """Execute ``climviz train``; return the exit code (0 ok, 2 bad input, 1 failure)."""
    from climviz.errors import ClimvizError, ClusterError

    try:
        from climviz.training.config import TrainConfig

        cfg = TrainConfig.from_file(args.config)
        changes = _overrides(args.set)
        if changes:
            cfg = cfg.replace(**changes)
        data = args.data if args.data is None or len(args.data) > 1 else args.data[0]
        resources = {"CPU": args.cpus_per_worker} if args.cpus_per_worker else None

        if args.submit:
            from climviz.training.jobs import submit_training

            job = submit_training(cfg, data, address=args.submit, num_workers=args.num_workers,
                                  use_gpu=args.use_gpu, resources_per_worker=resources,
                                  storage_path=args.storage_path, name=args.name,
                                  resume=args.resume, max_failures=args.max_failures)
            print(f"submitted Ray job {job.job_id} (run {job.name}); follow it with\n"
                  f"  ray job logs --address {job.address} --follow {job.job_id}")
            return 0

        from climviz.training.api import train

        if args.no_ray:
            res = train(cfg, data, use_ray=False, storage_path=args.storage_path,
                        name=args.name, resume=args.resume, progress=not args.quiet)
        else:
            res = train(cfg, data, use_ray=True, address=args.address,
                        num_workers=args.num_workers, use_gpu=args.use_gpu,
                        resources_per_worker=resources, storage_path=args.storage_path,
                        name=args.name, resume=args.resume, max_failures=args.max_failures,
                        progress="text" if not args.quiet else False,
                        connect_timeout_s=args.connect_timeout,
                        # Ray's own notices (token authentication, "Started a local Ray
                        # instance") are not this command's output; errors still show
                        ray_init={"logging_level": logging.ERROR})
    except ClimvizError as e:
        print(f"climviz train: error: {e}", file=sys.stderr)
        return 1 if isinstance(e, ClusterError) else 2
    except KeyboardInterrupt:
        print("climviz train: interrupted", file=sys.stderr)
        return 130

    payload = result_to_json(res)
    if args.result_json:
        from pathlib import Path

        from climviz.utils.atomic import atomic_path

        with atomic_path(args.result_json) as tmp:
            Path(tmp).write_text(json.dumps(payload, indent=2))
    cols = [c for c in ("epoch", "train_loss", "val_loss", "iou_background", "iou_tc", "iou_ar",
                        "miou", "images_per_s") if c in res.metrics]
    if not args.quiet and cols:
        print(res.metrics[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"checkpoint: {res.checkpoint}")
    print(f"best checkpoint: {res.best_checkpoint}")
    print(RESULT_PREFIX + json.dumps(payload), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m climviz.training.cli``."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
