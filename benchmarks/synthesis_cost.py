"""What each strategy's rows cost in a sweep, from the row sets' manifests: candidates the generator returned, rows
accepted, rejections by reason, generator tokens and seconds per accepted row (summed over the strategy's row sets in the sweep;
real-data and selection strategies have no generator).

    python benchmarks/synthesis_cost.py logs/train/multiruns/<time>
"""

import json
import sys
from collections import Counter
from pathlib import Path


def run_records(sweep: str) -> list[Path]:
    """A sweep's runs: train.py's ``metrics.json`` and synthesize.py's ``synthesis.json``."""
    return [*Path(sweep).rglob("metrics.json"), *Path(sweep).rglob("synthesis.json")]


def per_row(tallies: Counter, key: str, rows: int) -> str:
    return f"{tallies[key] / rows:.1f}" if rows and key in tallies else "-"


def main(sweep: str) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(run_records(sweep))]
    by_strategy: dict[str, dict[str, dict]] = {}  # strategy -> row set -> its manifest (seeds may share a set)
    for run in runs:
        by_strategy.setdefault(run["strategy"], {})[run["synthetic"]] = json.loads(
            (Path(run["synthetic"]) / "manifest.json").read_text())
    print("| strategy | row sets | generator completions | rows accepted | rejections by reason (summed over runs) | gen. tokens / row "
          "| gen. s / row | synthesis s / row |")
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for strategy, sets in by_strategy.items():
        manifests = list(sets.values())
        tallies = Counter()
        rejections = Counter()
        for m in manifests:
            tallies.update(m.get("tallies", {}))
            rejections.update(m.get("rejections", {}))
        rows = sum(m["rows"] for m in manifests)
        reasons = ", ".join(f"{k} {v}" for k, v in rejections.most_common()) or "-"
        seconds = sum(m["seconds"] for m in manifests)
        tokens, generator_s = (per_row(tallies, key, rows) for key in ("generator/completion_tokens",
                                                                          "generator/seconds"))
        print(f"| {strategy} | {len(manifests)} | {tallies.get('generator/completions', '-')} | {rows} | {reasons} | "
              f"{tokens} | {generator_s} | {seconds / rows if rows else 0:.1f} |")


if __name__ == "__main__":
    main(sys.argv[1])
