"""How well each offline AlpacaEval judge agrees with the official one (GPT-4-Turbo, ``weighted_alpaca_eval_gpt4_turbo``)
on the mirror's official annotations of alpaca-7b and phi-2 against the gpt4_1106_preview reference: each judge
re-judges the same (instruction, reference, model output) triples and is compared with GPT-4-Turbo's preference.

- ``agree``: share of comparisons where the judge's verdict (preference > 1.5: the model's output better; < 1.5: the
  reference) is GPT-4-Turbo's; GPT-4-Turbo's ties and NaNs are left out, a judge's tie counts as a disagreement.
  GPT-4-Turbo prefers the reference in ~97 % of these comparisons, so "always the reference" agrees ~97 %;
- ``balanced``: the mean over GPT-4-Turbo's two verdicts of the share the judge got right (per-class recall): 0.5 for
  any constant judge;
- ``WR`` / ``LC``: the win rate each judge gives the model, by alpaca_eval's own ``get_winrate`` (and, when the GLM's
  df_gamed.csv is at ``alpaca_eval/df_gamed.csv`` in the mirror, ``get_length_controlled_winrate``), beside
  GPT-4-Turbo's;
- ``WR(empty)``: the win rate the judge gives a constant empty answer on the same instructions (the trivial score).

``--system`` adds the system-level check: each judge's WR for the five models whose outputs the mirror has, against
the leaderboard's LC (Spearman rank correlation over the five).

    python benchmarks/judge_agreement.py --reward-model FOLDER [--limit N] [--judges length,logprob,reward_model]
"""

import argparse
import csv
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fac_lightning.evaluation.alpacaeval import win_rates
from fac_lightning.evaluation.judges import build_judge, cache_dir_of, judge_config

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("FAC_DATA_DIR", ROOT.parent / "shared" / "data"))
"""The data mirror, as ``paths.data_dir`` resolves it (``$FAC_DATA_DIR``, else ``../shared/data``)."""
CACHE_DIR = cache_dir_of(None)

MIRROR = DATA_DIR / "alpaca_eval"
ANNOTATED = ["alpaca-7b", "phi-2"]
WITH_OUTPUTS = ["Meta-Llama-3-8B-Instruct", "Mistral-7B-Instruct-v0.2", "Qwen1.5-7B-Chat", "alpaca-7b", "phi-2"]
GLM_DATA = MIRROR / "df_gamed.csv"


def read(name: str) -> list[dict]:
    with gzip.open(MIRROR / name) as f:
        return json.load(f)


def aligned(rows: list[dict], instructions: list[str]) -> tuple[list[int], list[dict]]:
    """The rows of ``instructions`` (by text; files differ in order, phi-2's lacks 2 of the 805) and their positions."""
    by_instruction = {r["instruction"]: r for r in rows}
    positions = [i for i, instruction in enumerate(instructions) if instruction in by_instruction]
    return positions, [by_instruction[instructions[i]] for i in positions]


def leaderboard() -> dict[str, dict]:
    with open(MIRROR / "weighted_alpaca_eval_gpt4_turbo_leaderboard.csv") as f:
        return {row[""]: row for row in csv.DictReader(f)}


def verdicts(preferences: np.ndarray) -> np.ndarray:
    """+1 = the model's output better, -1 = the reference, 0 = a tie or no verdict."""
    return np.nan_to_num(np.sign(np.asarray(preferences, dtype=float) - 1.5))


def agreement(judge_N: np.ndarray, official_N: np.ndarray) -> tuple[float, float]:
    judge, official = verdicts(judge_N), verdicts(official_N)
    decided = official != 0
    recalls = [float((judge[official == side] == side).mean()) for side in (1, -1) if (official == side).any()]
    return float((judge[decided] == official[decided]).mean()), float(np.mean(recalls))


def rates(preferences: np.ndarray, references: list[str], outputs: list[str], index: list[int]) -> dict:
    frame = pd.DataFrame({"preference": preferences, "output_1": references, "output_2": outputs,
                          "generator_1": "gpt4_1106_preview", "generator_2": "model"}, index=index)
    return win_rates(frame, GLM_DATA if GLM_DATA.exists() else None)


def percent(metrics: dict, key: str) -> str:
    return f"{metrics[key]:.2f}" if key in metrics else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judges", default="length,logprob,reward_model")
    parser.add_argument("--reward-model", help="a saved reward model folder (reward_model judge)")
    parser.add_argument("--logprob-model", default="smollm2_135m", help="conf/backbone option or HF folder")
    parser.add_argument("--limit", type=int, help="the first N instructions only")
    parser.add_argument("--system", action="store_true", help="also each judge's WR for the 5 models vs the LC")
    parser.add_argument("--out", help="write every number as JSON here")
    args = parser.parse_args()

    nodes = {"length": {"kind": "length"},
             "logprob": {"kind": "logprob", "model": args.logprob_model, "cache_dir": str(CACHE_DIR)},
             "reward_model": {"kind": "reward_model", "model": args.reward_model, "cache_dir": str(CACHE_DIR)}}
    judges = {name: build_judge(judge_config(nodes[name])) for name in args.judges.split(",")}
    board = leaderboard()
    limit = slice(None, args.limit)
    results = {"limit": args.limit, "glm_data": GLM_DATA.exists(), "models": {}, "empty": {}, "system": {}}
    reference = read("gpt4_1106_preview.model_outputs.json.gz")[limit]
    instructions, references = [r["instruction"] for r in reference], [r["output"] for r in reference]
    index = list(range(len(reference)))

    for model in ANNOTATED:
        positions, rows = aligned(read(f"{model}.weighted_alpaca_eval_gpt4_turbo.annotations.json.gz"), instructions)
        asked, answers = [r["instruction"] for r in rows], [r["output_1"] for r in rows]
        assert answers == [references[i] for i in positions]
        outputs = [r["output_2"] for r in rows]
        official_N = np.array([np.nan if r["preference"] is None else float(r["preference"]) for r in rows])
        entry = {"GPT-4-Turbo": {"agree": 1.0, "balanced": 1.0, **rates(official_N, answers, outputs, positions)},
                 "leaderboard": {k: float(board[model][k]) for k in ("win_rate", "length_controlled_winrate")}}
        for judge in judges.values():
            start = time.time()
            preferences_N = judge.preferences(asked, answers, outputs)
            agree, balanced = agreement(preferences_N, official_N)
            entry[judge.label] = {"agree": agree, "balanced": balanced, "seconds": time.time() - start,
                                  **rates(preferences_N, answers, outputs, positions)}
        results["models"][model] = entry

    for judge in judges.values():
        empty = [""] * len(instructions)
        results["empty"][judge.label] = rates(judge.preferences(instructions, references, empty), references, empty,
                                              index)["win_rate"]

    if args.system:
        for judge in judges.values():
            per_model = {}
            for model in WITH_OUTPUTS:
                positions, rows = aligned(read(f"{model}.model_outputs.json.gz"), instructions)
                answers, outputs = [references[i] for i in positions], [r["output"] for r in rows]
                per_model[model] = rates(judge.preferences([instructions[i] for i in positions], answers, outputs),
                                         answers, outputs, positions)["win_rate"]
            lc = [float(board[m]["length_controlled_winrate"]) for m in WITH_OUTPUTS]
            results["system"][judge.label] = {"win_rate": per_model,
                                              "spearman_vs_lc": float(spearmanr(list(per_model.values()), lc)[0])}

    print(f"Judge agreement with GPT-4-Turbo (weighted_alpaca_eval_gpt4_turbo) on the mirror's official annotations, "
          f"{len(instructions)} instructions each{'' if args.limit is None else f' (--limit {args.limit})'}; "
          f"LC {'by alpaca_eval GLM' if GLM_DATA.exists() else 'n/a: no df_gamed.csv in the mirror'}\n")
    print("| model | judge | agree | balanced | WR | LC | WR(empty) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, entry in results["models"].items():
        board_row = entry.pop("leaderboard")
        print(f"| {model} | leaderboard (GPT-4-Turbo) | | | {board_row['win_rate']:.2f} | "
              f"{board_row['length_controlled_winrate']:.2f} | |")
        for label, m in entry.items():
            empty = results["empty"].get(label)
            print(f"| {model} | {label} | {100 * m['agree']:.1f} | {100 * m['balanced']:.1f} | "
                  f"{percent(m, 'win_rate')} | {percent(m, 'length_controlled_winrate')} | "
                  f"{'' if empty is None else f'{empty:.2f}'} |")
        entry["leaderboard"] = board_row
    if results["system"]:
        print(f"\n| judge | {' | '.join(WITH_OUTPUTS)} | Spearman vs leaderboard LC |")
        print(f"|---|{'---:|' * (len(WITH_OUTPUTS) + 1)}")
        lc = " | ".join(f"{float(board[m]['length_controlled_winrate']):.2f}" for m in WITH_OUTPUTS)
        print(f"| leaderboard LC (GPT-4-Turbo) | {lc} | 1 |")
        for label, s in results["system"].items():
            row = " | ".join(f"{s['win_rate'][m]:.2f}" for m in WITH_OUTPUTS)
            print(f"| {label} | {row} | {s['spearman_vs_lc']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
