"""`promoloop`: the command line. Each subcommand is a thin shell over a function that can be imported."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from pathlib import Path

from orchestration.settings import DBT_PROJECT_DIR, paths


def _set_home(home: str | None) -> None:
    if home:
        os.environ["PROMO_HOME"] = str(Path(home).expanduser().resolve())


def cmd_parse(_: argparse.Namespace) -> int:
    """Parse the dbt project so Dagster can load its manifest (also done by `make setup`)."""
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"]
    )
    if not result.success:
        print(f"dbt parse failed: {result.exception}", file=sys.stderr)
        return 1
    print(f"parsed dbt project -> {DBT_PROJECT_DIR / 'target' / 'manifest.json'}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from orchestration.demo import simulate_shop

    simulate_shop(
        paths(),
        n_users=args.users,
        n_products=args.products,
        history_days=args.days,
        seed=args.seed,
        start=args.start,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from orchestration.demo import DemoOptions, run_demo

    given = {"n_users": args.users, "n_products": args.products, "history_days": args.history_days,
             "loop_days": args.days, "seed": args.seed}
    options = DemoOptions(**{k: v for k, v in given.items() if v is not None}, fresh=not args.keep)
    run_demo(paths(), options)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from orchestration.olist import convert_olist

    report = convert_olist(Path(args.dir), paths().landing)
    print(report)
    if args.load:
        from orchestration.demo import load_landing

        # Real histories start long before the default partitions do.
        os.environ.setdefault("PROMO_START_DATE", report.first_day)
        load_landing(paths(), date.fromisoformat(report.first_day), date.fromisoformat(report.last_day))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from orchestration.report import print_daily_report

    return print_daily_report(paths(), args.date)


def cmd_rollback(args: argparse.Namespace) -> int:
    from ml.registry import Registry

    registry = Registry(paths().artifacts)
    version = registry.rollback(args.model, reason=args.reason)
    print(f"{args.model}: champion is now {version}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.run_all import run_all

    return run_all(args.names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="promoloop",
        description="Personalized promotions from a shop's own data (Dagster + dbt-duckdb + PyTorch).",
    )
    parser.add_argument("--home", help="promoloop home (default: $PROMO_HOME or ./.promoloop)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("parse", help="parse the dbt project (writes the manifest Dagster loads)")
    p.set_defaults(func=cmd_parse)

    p = sub.add_parser("simulate", help="write a simulated shop's landing files (no Dagster)")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--products", type=int, default=500)
    p.add_argument("--days", type=int, default=30, help="days of behaviour history")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--start",
        type=date.fromisoformat,
        default=None,
        help="first history day (default: so that history ends yesterday)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="simulate a shop and run the platform on it end to end, in-process")
    # Defaults live in orchestration.demo.DemoOptions (5,000 users, 500 products, 30 + 14 days, seed 7).
    p.add_argument("--users", type=int)
    p.add_argument("--products", type=int)
    p.add_argument("--history-days", type=int)
    p.add_argument("--days", type=int, help="closed-loop days after the history: plan, respond, learn (14)")
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", action="store_true", help="keep an existing home instead of starting fresh")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("import", help="convert a real shop's export into the landing contract")
    p.add_argument("source", choices=["olist"])
    p.add_argument("dir", help="folder with the source CSV files")
    p.add_argument("--load", action="store_true", help="then ingest it and build the features (in-process)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("report", help="print the daily delivery report")
    p.add_argument("--date", type=date.fromisoformat, default=None)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("rollback", help="make the previous champion of a model the champion again")
    p.add_argument("model", choices=["effect_predictor", "copy_generator"])
    p.add_argument("--reason", default="manual rollback")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("bench", help="run the benchmarks in bench/ and refresh bench/results")
    p.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    p.set_defaults(func=cmd_bench)
    return parser


def default_history_start(history_days: int) -> date:
    return date.today() - timedelta(days=history_days)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _set_home(args.home)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
