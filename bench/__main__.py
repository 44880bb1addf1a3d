"""Every benchmark: a table on screen, bench/results/<name>.json, bench/RESULTS.md.

    python -m bench [--smoke] [--only scrape,collection_keycloak,collection_synthetic,operator_scale,pools] [--out DIR]

`--smoke` runs tiny sizes (tests/test_bench.py runs it so the harness cannot rot; its
figures mean nothing). A Keycloak already running can be named with KCM_BENCH_KEYCLOAK_URL,
KCM_BENCH_KEYCLOAK_USER and KCM_BENCH_KEYCLOAK_PASSWORD; otherwise one is started.
"""

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from bench import collection_keycloak, collection_synthetic, operator_scale, pools, scrape
from bench.report import ROOT, Result, machine, table, write


def keycloak_from_environment() -> collection_keycloak.Admin | None:
    url = os.environ.get("KCM_BENCH_KEYCLOAK_URL")
    if not url:
        return None
    return collection_keycloak.Admin(
        url, os.environ.get("KCM_BENCH_KEYCLOAK_USER", "admin"), os.environ["KCM_BENCH_KEYCLOAK_PASSWORD"]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=ROOT / "bench", help="where results/ and RESULTS.md go")
    args = parser.parse_args(argv)
    benchmarks: dict[str, Callable[[], Result]] = {
        "scrape": lambda: scrape.run(args.smoke),
        "collection_keycloak": lambda: collection_keycloak.run(args.smoke, keycloak_from_environment()),
        "collection_synthetic": lambda: collection_synthetic.run(args.smoke),
        "operator_scale": lambda: operator_scale.run(args.smoke),
        "pools": lambda: pools.run(args.smoke, keycloak_from_environment()),
    }
    chosen = [name.strip() for name in args.only.split(",") if name.strip()] or list(benchmarks)
    unknown = set(chosen) - set(benchmarks)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}; known: {', '.join(benchmarks)}")
    host = machine()  # the load average before the benchmarks add theirs
    results = []
    for name in chosen:
        print(f"running {name} ...", flush=True)
        results.append(benchmarks[name]())
    write(results, args.out / "results", args.out / "RESULTS.md", host)
    print(table(results))
    print(f"\nwritten: {args.out / 'results'}/*.json, {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
