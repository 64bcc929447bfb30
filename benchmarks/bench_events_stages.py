"""Cost of the staged events functions against their one-body baselines (issue 20).

``events.comparison.compare``, ``events.scores.skill`` and ``events.tracking._build_tracks``
(behind ``track``) were split into named stages of a screen each, and their class
arguments now go through ``climviz._compat.class_ids``. This script loads the one-body
modules from a baseline git revision (default ``780ca06``, before the split) next to
the current ones and times both in the same run, on the same synthetic inputs:

* ``track(table, labels)`` of a 96-step run at 96 x 144 (labels and table made once);
* ``compare(a, b)`` of two 96-step runs at 64 x 96 (8-step blocks, 200 replicates, maps);
* ``skill(pred, truth)`` of two 96-step runs at 96 x 144.

Each ratio is current / baseline median time (1.0: the split costs nothing). The
script also checks that both versions give equal outputs.

Usage::

    python benchmarks/bench_events_stages.py [--quick] [--baseline REV] [--out PATH]
"""

from __future__ import annotations

import argparse

import pandas as pd

from _common import baseline_module, machine_info, paired, save_result  # benchmarks/_common.py (this script's folder)



def _same_frames(a: tuple[pd.DataFrame, ...], b: tuple[pd.DataFrame, ...]) -> bool:
    try:
        for x, y in zip(a, b, strict=True):
            pd.testing.assert_frame_equal(x, y)
    except AssertionError:
        return False
    return True


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="24 steps, 6 rounds")
    ap.add_argument("--baseline", default="780ca06", help="git revision of the one-body versions")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/events_stages[_quick].json)")
    args = ap.parse_args(argv)
    machine = machine_info()
    rounds, repeats = (6, 1) if args.quick else (30, 1)
    n = 24 if args.quick else 96

    from climviz.data.synthetic import synthetic_run
    from climviz.events import comparison, scores, tracking
    from climviz.events.tables import label_table

    old_cmp = baseline_module(args.baseline, "climviz/events/comparison.py", "_ev_stages_comparison_old")
    old_sc = baseline_module(args.baseline, "climviz/events/scores.py", "_ev_stages_scores_old")
    old_tr = baseline_module(args.baseline, "climviz/events/tracking.py", "_ev_stages_tracking_old")

    big_a = synthetic_run(n, shape=(96, 144), seed=1)
    big_b = synthetic_run(n, shape=(96, 144), seed=2)["LABELS"].load()
    labels, tab = label_table(big_a["LABELS"], fields=big_a[["PSL"]])
    labels = labels.load()
    small_a = synthetic_run(n, shape=(64, 96), seed=3)["LABELS"].load()
    small_b = synthetic_run(n, shape=(64, 96), seed=4)["LABELS"].load()
    truth = big_a["LABELS"].load()

    cases = {
        "track": (lambda m: (lambda: m.track(tab, labels)), (tracking, old_tr),
                  lambda r: (r.tracks, r.events, r.edges)),
        "compare": (lambda m: (lambda: m.compare(small_a, small_b, block_steps=8, n_boot=200, seed=0)),
                    (comparison, old_cmp), lambda r: (r.table,)),
        "skill": (lambda m: (lambda: m.skill(big_b, truth)), (scores, old_sc), lambda r: (r,)),
    }
    figures: dict = {"n_steps": n}
    ratios: dict = {}
    equal: dict = {}
    for name, (call, (new, old), frames) in cases.items():
        equal[name] = _same_frames(frames(call(new)()), frames(call(old)()))
        both = paired(call(old), call(new), rounds=rounds, repeats=repeats, names=("old", "new"))
        t_old, t_new = both["old"], both["new"]
        figures[f"{name}_baseline"] = t_old
        figures[f"{name}_staged"] = t_new
        ratios[f"{name}_staged_vs_one_body"] = t_new["median_s"] / t_old["median_s"]
        print(f"{name}: staged {t_new['median_s']:.3f} s, one body {t_old['median_s']:.3f} s, "
              f"ratio {ratios[f'{name}_staged_vs_one_body']:.3f}, equal outputs: {equal[name]}")
    figures["equal_outputs"] = equal
    save_result("events_stages", figures, ratios,
                f"current vs {args.baseline} (one-body) modules in one process, same inputs; timed() in "
                f"{rounds} alternating rounds of {repeats} (who goes first alternates), runs pooled, "
                "median; load average range recorded per case",
                quick=args.quick, out=args.out, machine=machine, baseline=args.baseline)
    return {"figures": figures, "ratios": ratios}


if __name__ == "__main__":
    main()
