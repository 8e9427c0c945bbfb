"""Print the first synthesized rows of each strategy in a sweep, verbatim, as Markdown: preference pairs (reward)
and instruction + response rows (instruction following) message by message, A/B items (steering) field by field.

    python benchmarks/sample_rows.py logs/train/multiruns/<time> [per_strategy]
"""

import json
import sys
from pathlib import Path

from synthesis_cost import run_records


def print_row(row: dict) -> None:
    message_lists = [k for k in ("prompt", "chosen", "rejected", "completion") if isinstance(row.get(k), list)]
    if message_lists:  # a preference pair or an instruction + response row: message lists
        for key in message_lists:
            for message in row[key]:
                print(f"   - **{key}** ({message['role']}): {json.dumps(message['content'])}")
        return
    for key, value in row.items():
        if key != "provenance":
            print(f"   - **{key}**: {json.dumps(value)}")


def main(sweep: str, per_strategy: int = 10) -> None:
    runs = sorted((json.loads(p.read_text()) for p in run_records(sweep)),
                  key=lambda r: (r["task"], r["strategy"], r["seed"]))
    for task, strategy in dict.fromkeys((r["task"], r["strategy"]) for r in runs):
        rows = [(run["seed"], json.loads(line)) for run in runs if (run["task"], run["strategy"]) == (task, strategy)
                for line in (Path(run["synthetic"]) / "rows.jsonl").read_text().splitlines()]
        print(f"\n### {task}: {strategy} (first {per_strategy} of {len(rows)} rows, seeds in order)\n")
        for i, (seed, row) in enumerate(rows[:per_strategy], start=1):
            print(f"{i}. seed {seed}")
            print_row(row)


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:3]))
