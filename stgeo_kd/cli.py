"""Command line: ``stgeo-kd run CONFIG.yaml --out DIR [--set key.path=value ...]``."""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stgeo-kd",
        description="Distil spatio-temporal geospatial models into small, fast students.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the whole pipeline from a YAML config")
    r.add_argument("config", help="YAML config file (see examples/)")
    r.add_argument("--out", required=True, help="output folder for report.json, predictions.gpkg, map.html, student.onnx")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    sub.add_parser("version", help="print the version")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        import stgeo_kd

        print(stgeo_kd.__version__)
        return 0
    from stgeo_kd.errors import StgeoError

    overrides = list(args.overrides)
    if args.quiet:
        overrides.append("train.progress=false")
    try:
        from stgeo_kd.pipeline import run

        # user-facing warnings (repaired data, isolated sensors) as one plain line each
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
        result = run(args.config, out_dir=args.out, overrides=overrides)
    except StgeoError as exc:
        print("stgeo-kd: error: " + textwrap.fill(str(exc), width=100, subsequent_indent="  "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("stgeo-kd: interrupted", file=sys.stderr)
        return 130
    rep = result.report
    arts = result.artifacts
    print(_summary(rep))
    for key in ("map", "report", "gpkg", "onnx"):
        if key in arts:
            print(f"{key:>7}: {arts[key].resolve()}")
    return 0


def _summary(rep: dict) -> str:
    """A small text table of MAE per horizon and cost for the three models and baselines."""
    hs = rep["task"]["horizons"]
    lines = [f"test MAE ({rep['task'].get('units') or 'data units'}) by steps ahead:"]
    lines.append(f"{'model':<20}" + "".join(f"{'h' + str(k):>8}" for k in hs) + f"{'params':>10}{'ms@b1':>9}")
    m = rep["models"]
    for role in ("teacher", "student", "student_scratch"):
        e = m[role]
        lines.append(
            f"{role:<20}" + "".join(f"{e['metrics'][f'h{k}']['mae']:>8.3f}" for k in hs)
            + f"{e['params']:>10,}{e['latency_ms_batch1']:>9.2f}"
        )
    for name, e in m["baselines"].items():
        lines.append(f"{name:<20}" + "".join(f"{e['metrics'][f'h{k}']['mae']:>8.3f}" for k in hs))
    c = rep["comparison"]
    lines.append(
        f"student is {c['latency_speedup_student_vs_teacher']:.1f}x faster than the teacher at batch 1 "
        f"with {c['param_ratio_teacher_to_student']:.1f}x fewer parameters"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
