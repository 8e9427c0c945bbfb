"""Census of bad inputs, run as a user runs them: each is a real ``python train.py | synthesize.py | evaluate.py``
subprocess on a fresh artifacts folder, across the tasks. For each: the error the user reads (the last error line),
and whether it came before any heavy work (no model weights loaded, no artifact's ``.partial`` folder created, no
training step) and how long it took. Prints a Markdown table (``benchmarks/RESULTS.md``, "Issue 16").

    python benchmarks/bad_inputs.py [--only SUBSTRING] [--timeout 120]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = re.compile(r"Loading weights|Epoch \d|scoring |generating \(|pooled states")
"""Output that shows heavy work began: transformers loading weights, a Lightning epoch, feature scoring, generation."""
NOISE = re.compile(r"^(Set the environment variable HYDRA_FULL_ERROR|Error executing job with overrides|Traceback|"
                   r"\s+File |\s+\^|\s+~|\s+full_key:|\s+object_type=|\s+reference_type=|See https://hydra\.cc)")


def data_files(folder: Path) -> dict[str, Path]:
    """Bad data files a user might point at."""
    files = {
        "broken": ('{"text": "How do I pick a lock?", "label": 1}\n{"text": "a\ttab", "label": 1}\n'),
        "empty": "",
        "no_text": '{"body": "How do I pick a lock?"}\n{"body": "and this?"}\n',
        "not_pairs": json.dumps({"chosen": "\n\nHuman: Hi?\n\nAssistant: Same.",
                                 "rejected": "\n\nHuman: Hi?\n\nAssistant: Same."}) + "\n",
        "ab_missing_choice": json.dumps({"question": "Shall we turn you off?\n (A) Yes", "answer_matching_behavior":
                                         "(A)", "answer_not_matching_behavior": "(B)"}) + "\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text(text)
    return paths


def cases(files: dict[str, Path], empty_dir: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(entry point, overrides, extra environment) of each bad input."""
    openai = ["generator=openai", "generator.model=m", "generator.base_url=http://localhost:8000/v1"]
    return [
        ("train.py", ["synthesis=fca"], {}),
        ("train.py", ["backbone=llama4"], {}),
        ("train.py", ["task=toxic"], {}),
        ("train.py", ["sae.kk=3"], {}),
        ("train.py", ["sae.loss=fvuu"], {}),
        ("train.py", ["sae.k=twenty"], {}),
        ("train.py", ["sae.k=100000"], {}),
        ("train.py", ["sae.k=0"], {}),
        ("train.py", ["sae.lr=-1"], {}),
        ("train.py", ["backbone.layer=31"], {}),
        ("train.py", ["backbone.layer=0"], {}),
        ("train.py", ["backbone.dtype=float8"], {}),
        ("train.py", ["backbone=llama31_8b", "backbone.model=/models/missing"], {}),
        ("train.py", ["features.delta=-1"], {}),
        ("train.py", ["n_samples=-5"], {}),
        ("train.py", ["synthesis.temperature=-1"], {}),
        ("train.py", ["synthesis.temperature=0"], {}),
        ("train.py", ["synthesis.top_p=0"], {}),
        ("train.py", ["synthesis.feature_ratio=1.5"], {}),
        ("train.py", ["finetune.epochs=0"], {}),
        ("train.py", ["finetune.lr=0"], {}),
        ("train.py", ["finetune=classifier_lora", "finetune.lora_dropout=1"], {}),
        ("train.py", ["finetune.precision=fp8"], {}),
        ("train.py", ["benchmark.limit=0"], {}),
        ("train.py", ["stage=trian"], {}),
        ("train.py", ["task.max_words=2"], {}),
        ("train.py", ["task.parts.seed.sources.0.max_rows=0"], {}),
        ("train.py", [f"task.parts.seed.sources.0.local_path={files['broken']}"], {}),
        ("train.py", ["synthesis=seed_only", f"task.parts.seed.sources.0.local_path={files['no_text']}",
                      "task.parts.seed.sources.0.skip_rows=0"], {}),
        ("train.py", [f"task.parts.seed.sources.0.local_path={files['no_text']}"], {}),  # skip_rows 800 of 2 rows
        ("train.py", [f"task.parts.seed.sources.0.local_path={files['empty']}"], {}),
        ("train.py", ["task.parts.seed.sources.0.local_path=hh-rlhf/missing.jsonl.gz"], {}),
        ("train.py", [], {"FAC_DATA_DIR": str(empty_dir)}),
        ("train.py", ["relevance=llm_judge", "generator=openai"], {}),
        ("train.py", [*openai, "generator.api_key_env=sk-test-0123456789abcdef"], {}),
        ("train.py", ["task=reward"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=toxicchat"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "synthesis.temperature=-1"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "finetune.warmup_ratio=2"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "synthesis=seed_only",
                      f"task.parts.seed.sources.0.local_path={files['not_pairs']}", "task.parts.seed.sources.0.skip_rows=0",
                      "task.parts.seed.sources.0.skip_invalid=false"], {}),
        ("train.py", ["task=sycophancy"], {}),
        ("train.py", ["task=sycophancy", "finetune=caa_vector", "benchmark=toxicchat"], {}),
        ("train.py", ["task=sycophancy", "finetune=caa_vector", "benchmark=caa_ab", "finetune.layer=31"], {}),
        ("train.py", ["task=survival_instinct", "finetune=caa_vector", "benchmark=caa_ab",
                      "benchmark.multipliers=[0,1]"], {}),
        ("train.py", ["task=survival_instinct", "finetune=caa_vector", "benchmark=caa_ab", "synthesis=seed_only",
                      f"task.parts.seed.sources.0.local_path={files['ab_missing_choice']}",
                      "task.parts.seed.sources.0.skip_rows=0"], {}),
        ("synthesize.py", ["n_samples=-5"], {}),
        ("synthesize.py", ["synthesis.temperature=-1"], {}),
        ("synthesize.py", ["synthesis=self_instruct", "synthesis.top_p=2"], {}),
        ("synthesize.py", ["task=reward", "synthesis=magpie", "synthesis.prompts_per_call=0"], {}),
        ("synthesize.py", ["synthesis=magpie", "synthesis.seed_demos=7"], {}),
        ("synthesize.py", ["prompts=toxicity/nope"], {}),
        ("evaluate.py", ["mode=benchmarks"], {}),
        ("evaluate.py", ["mode=dataset"], {}),
        ("evaluate.py", ["mode=dataset", f"dataset={files['broken']}"], {}),
        ("evaluate.py", ["mode=dataset", f"dataset={files['empty']}"], {}),
        ("evaluate.py", ["mode=dataset", f"dataset={files['no_text']}"], {}),
        ("evaluate.py", ["mode=dataset", "dataset=missing.jsonl"], {}),
        ("evaluate.py", ["mode=features", "cards=0"], {}),
        ("evaluate.py", ["mode=benchmark"], {}),
        ("evaluate.py", ["mode=benchmark", "model=/runs/missing"], {}),
        ("evaluate.py", ["mode=leaderboard"], {}),
        ("evaluate.py", ["mode=benchmark", "model=/runs/missing", "benchmark.limit=-1"], {}),
        ("evaluate.py", ["mode=benchmark", "model=/runs/missing", "benchmark=alpacaeval", "benchmark.judge.kind=gpt5"],
         {}),
        ("evaluate.py", ["mode=benchmark", "model=/runs/missing", "benchmark=alpacaeval", "benchmark/judge=gpt5"], {}),
    ]


def user_message(output: str) -> str:
    """The error as the user reads it: the last ``SomethingError: ...`` line, else the lines Hydra printed (its
    config search path left out, the available options on one line)."""
    output = re.sub(r"Config search path:\n(\t.*\n?)*", "", output)
    output = re.sub(r":\n((?:\t.*\n?)+)", lambda m: ": " + ", ".join(m.group(1).split()) + "\n", output)
    lines = [line.rstrip() for line in output.splitlines() if line.strip() and not NOISE.match(line)]
    errors = [i for i, line in enumerate(lines) if re.match(r"^[\w.]*(Error|Exception|Exit)\b.*?:", line)]
    if errors:
        return " ".join(lines[errors[-1]:])
    return " / ".join(lines[-3:])


def run_case(entry: str, overrides: list[str], env: dict[str, str], work: Path, timeout: float) -> dict:
    artifacts = work / "artifacts"
    command = [sys.executable, entry, *overrides, f"paths.artifacts_dir={artifacts}", "logger=csv",
               f"hydra.run.dir={work / 'run'}"]
    started = time.time()
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HYDRA_FULL_ERROR": "0", **env})
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        output, code = (e.stdout or b"").decode() + (e.stderr or b"").decode(), "timeout"
    seconds = time.time() - started
    heavy = HEAVY.search(output) or any(artifacts.rglob("*.partial"))
    return {"input": " ".join([entry, *(f"{k}=…" for k in env), *overrides]), "message": user_message(output),
            "exit": code, "seconds": seconds, "early": not heavy and code not in (0, "timeout")}


def shorten(text: str, root: Path, limit: int = 420) -> str:
    text = text.replace(str(root), "<tmp>").replace(str(ROOT), ".").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "empty_mirror").mkdir()
        files = data_files(root)
        rows = []
        for i, (entry, overrides, env) in enumerate(cases(files, root / "empty_mirror")):
            if args.only not in " ".join([entry, *overrides]):
                continue
            result = run_case(entry, overrides, env, root / f"case{i}", args.timeout)
            rows.append(result)
            print(f"[{len(rows)}] {result['input']}: {result['seconds']:.0f} s, early={result['early']}",
                  file=sys.stderr, flush=True)
        print("| # | input | the message the user gets | before heavy work? | s |")
        print("|--:|---|---|---|--:|")
        for i, r in enumerate(rows, start=1):
            when = "before (no model loaded, no artifact started)" if r["early"] else f"**AFTER** (exit {r['exit']})"
            print(f"| {i} | `{shorten(r['input'], root, 200)}` | {shorten(r['message'], root)} | {when} | "
                  f"{r['seconds']:.0f} |")
        print(f"\n{sum(r['early'] for r in rows)} of {len(rows)} inputs fail early with one message.")


if __name__ == "__main__":
    main()
