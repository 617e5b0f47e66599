"""`make bench`: benchmarks on real servers started for the run; prints a table and writes
bench/results.md with the machine it ran on. Not part of `make test`.

BENCH_QUICK=1 makes every benchmark short (a smoke run)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

from bench import throwaway_secrets  # noqa: E402
from bench.api_reads_bench import ensure_wrk, run_api_reads_bench, wrk_table  # noqa: E402
from bench.api_safety_bench import run_api_safety_bench  # noqa: E402
from bench.auto_invest_bench import matching_table, run_auto_invest_bench  # noqa: E402
from bench.ledger_bench import run_ledger_bench  # noqa: E402
from bench.machine import describe_machine  # noqa: E402
from bench.platform_bench import run_platform_bench, run_worker_memory_bench  # noqa: E402
from core.migrate import upgrade_to_head  # noqa: E402
from runner.ports import free_port  # noqa: E402
from runner.postgres import EmbeddedPostgres  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.md"
SECTIONS = ("ledger", "matching", "platform", "api", "reads", "memory")


def table(rows) -> str:
    lines = ["| benchmark | clients | seconds | transactions | tx/s | postings/s |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        pps = f"{row.pps:,.0f}" if row.postings else "-"
        lines.append(
            f"| {row.name} | {row.clients} | {row.seconds:.2f} | {row.transactions:,} | {row.tps:,.0f} | {pps} |"
        )
    return "\n".join(lines)


def main() -> None:
    quick = os.environ.get("BENCH_QUICK") == "1"
    # BENCH_ONLY=platform (or ledger, matching, api, reads, memory; comma-separated) runs some sections only,
    # and writes results-<sections>.md: results.md always holds a whole run.
    only = set(filter(None, os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")))
    if "reads" in only:
        ensure_wrk()  # (before hours of the other parts: a missing wrk is said at once)
    machine = describe_machine()
    report = ["# Benchmarks", "", f"Machine: {machine}", ""]
    partial = only != set(SECTIONS)
    if partial:
        report += [f"(a partial run: {', '.join(sorted(only))})", ""]
    with tempfile.TemporaryDirectory(prefix="crowdlending-bench-") as tmp:
        if only & {"ledger", "matching", "api"}:
            # Durable settings (fsync on), as in production: the ratio to pgbench is what matters.
            postgres = EmbeddedPostgres(
                Path(tmp) / "ledger", free_port(), password=throwaway_secrets.POSTGRES_PASSWORD, durable=True
            )
            postgres.start()
            try:
                if "ledger" in only:
                    url = postgres.create_database("bench")
                    upgrade_to_head(url)
                    rows, notes = run_ledger_bench(url, quick=quick)
                    report += [
                        "## Ledger",
                        "",
                        "Same embedded PostgreSQL 18 (fsync on), same database, same run.",
                        "",
                        table(rows),
                        "",
                        *[f"- {note}" for note in notes],
                        "",
                    ]
                if "matching" in only:
                    matching_url = postgres.create_database("bench_auto_invest")
                    upgrade_to_head(matching_url)
                    matching_rows, matching_notes = run_auto_invest_bench(matching_url, quick=quick)
                    report += [
                        "## Auto-invest matching",
                        "",
                        matching_table(matching_rows),
                        "",
                        *[f"- {note}" for note in matching_notes],
                        "",
                    ]
                if "api" in only:
                    api_url = postgres.create_database("bench_api")
                    upgrade_to_head(api_url)
                    api_text, api_notes = run_api_safety_bench(api_url, quick=quick)
                    report += ["## API safety", "", api_text, "", *[f"- {note}" for note in api_notes], ""]
            finally:
                postgres.stop()
        if "platform" in only:
            platform_text, platform_notes = asyncio.run(run_platform_bench(Path(tmp) / "platform", quick))
            report += [
                "## The platform",
                "",
                "Real Temporal dev server (in memory), embedded PostgreSQL 18 (fsync on), the worker and "
                "the API as their own processes; sandbox clock: a month of loan time per 10 s for whole lives.",
                "",
                platform_text,
                "",
                *[f"- {note}" for note in platform_notes],
                "",
            ]
        if "memory" in only:
            memory_text, memory_notes = asyncio.run(run_worker_memory_bench(Path(tmp) / "memory", quick))
            report += ["## Worker memory", "", memory_text, "", *[f"- {note}" for note in memory_notes], ""]
        if "reads" in only:
            read_rows, read_notes = run_api_reads_bench(Path(tmp) / "reads", quick)
            report += [
                "## API reads (wrk)",
                "",
                wrk_table(read_rows),
                "",
                *[f"- {note}" for note in read_notes],
                "",
            ]
    text = "\n".join(report)
    print(text)
    target = RESULTS.with_name(f"results-{'-'.join(sorted(only))}.md") if partial else RESULTS
    target.write_text(text)
    print(f"written to {target}")


if __name__ == "__main__":
    main()
