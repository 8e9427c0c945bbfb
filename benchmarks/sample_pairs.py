"""Print the first synthesized preference pairs of each strategy in a reward sweep, verbatim, as Markdown.

    python benchmarks/sample_pairs.py logs/train/multiruns/<time> [per_strategy]
"""

import json
import sys
from pathlib import Path


def main(sweep: str, per_strategy: int = 10) -> None:
    runs = sorted((json.loads(p.read_text()) for p in Path(sweep).rglob("metrics.json")),
                  key=lambda r: (r["strategy"], r["seed"]))
    for strategy in dict.fromkeys(r["strategy"] for r in runs):
        pairs = [(run["seed"], json.loads(line)) for run in runs if run["strategy"] == strategy
                 for line in (Path(run["synthetic"]) / "rows.jsonl").read_text().splitlines()]
        print(f"\n### {strategy} (first {per_strategy} of {len(pairs)} pairs, seeds in order)\n")
        for i, (seed, row) in enumerate(pairs[:per_strategy], start=1):
            print(f"{i}. seed {seed}")
            for key in ("prompt", "chosen", "rejected"):
                for message in row[key]:
                    print(f"   - **{key}** ({message['role']}): {json.dumps(message['content'])}")


if __name__ == "__main__":
    main(sys.argv[1], *map(int, sys.argv[2:3]))
