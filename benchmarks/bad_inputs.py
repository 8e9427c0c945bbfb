"""Census of bad inputs, run as a user runs them: each is a real ``python train.py | synthesize.py | evaluate.py``
subprocess on a fresh artifacts folder, across the tasks. For each: the error the user reads (the last error line),
whether it came before any heavy work (no model weights loaded, no artifact's ``.partial`` folder created, no
training step), whether it names what is wrong (generated cases: the key, file or package), and how long it took.
Prints a Markdown table (``benchmarks/RESULTS.md``, "Issue 16" and "Issue 30").

Two kinds of case: hand-written ones (``hand_written_cases``), and generated ones (``generated_cases``): for every
registered benchmark, judge, generator, finetune kind, strategy and task option, a run that uses it is planned, and
each requirement it declares (``fac_lightning.requirements``) is broken once: a missing file, a file that is not
UTF-8 or not JSON, a missing package (hidden from the run), an endpoint that does not answer. A component added later
is in the census without anyone listing it.

    python benchmarks/bad_inputs.py [--only SUBSTRING] [--generated | --hand-written] [--timeout 120]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fac_lightning import config
from fac_lightning.plan import USES, plan
from fac_lightning.requirements import DataFile, Endpoint, Package, SavedModel, Source
from fac_lightning.stages.evaluate import MODE_USES
from fac_lightning.stages.synthesis import SYNTHESIS

DATA_DIR = Path(os.environ.get("FAC_DATA_DIR", ROOT.parent / "shared" / "data"))
SILENT = "http://127.0.0.1:9/v1"
"""An endpoint nothing answers (the discard port)."""
HIDE_ENV = "FAC_CENSUS_HIDE"
"""Modules a census subprocess runs without (``sitecustomize`` below makes them unimportable)."""
SITECUSTOMIZE = f"""import os, sys
for name in filter(None, os.environ.get({HIDE_ENV!r}, "").split(",")):
    sys.modules[name] = None  # import fails; importlib.util.find_spec returns None
"""
HEAVY = re.compile(r"Loading weights|Epoch \d|scoring |generating \(|pooled states")
"""Output that shows heavy work began: transformers loading weights, a Lightning epoch, feature scoring, generation."""
NOISE = re.compile(r"^(Set the environment variable HYDRA_FULL_ERROR|Error executing job with overrides|Traceback|"
                   r"\s+File |\s+\^|\s+~|\s+full_key:|\s+object_type=|\s+reference_type=|See https://hydra\.cc)")


@dataclass
class Case:
    entry: str
    overrides: list[str]
    env: dict[str, str] = field(default_factory=dict)
    hide: tuple[str, ...] = ()
    """Modules the run goes without (a missing optional package)."""
    expect: str | None = None
    """What the message must name (generated cases: the key, file or package); None: not checked."""
    origin: str = "hand-written"


FILL = {
    "generator=openai": ["generator.model=m", f"generator.base_url={SILENT}"],
    "benchmark=alpacaeval": ["benchmark.length_controlled=false"],  # the mirror has no df_gamed.csv
    "task=instruction": ["benchmark.length_controlled=false"],  # its chain's benchmark is alpacaeval
}
"""Values an option requires and has no default for (a new option missing here shows as a failing planned run)."""


def options(group: str) -> list[str]:
    """A config group's options (``conf/<group>/*.yaml``)."""
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def entry_uses(entry: str, cfg) -> tuple[str, ...]:
    """What an entry point runs with this config (``plan.USES``): what its preflight checks."""
    if entry == "evaluate.py":
        return MODE_USES[cfg.mode]
    if entry == "synthesize.py":
        return SYNTHESIS
    return ("sae",) if cfg.stage == "sae" else USES


def compose(entry: str, overrides: list[str], work: Path):
    return config.compose_config([f"paths.data_dir={DATA_DIR}", f"paths.artifacts_dir={work / 'artifacts'}",
                                  *overrides], "evaluate" if entry == "evaluate.py" else "train")


def saved_model(work: Path, produces: str, task: str) -> Path:
    """A folder whose model.json names a saved model of kind ``produces`` (preflight reads it; nothing loads it)."""
    folder = work / "models" / f"{produces}-{task}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"kind": produces, "produces": produces, "task": task,
                                                   "finetune": {}, "backbone": {}}))
    return folder


def planned_runs(work: Path) -> list[tuple[str, str, list[str]]]:
    """(option, entry point, overrides) of a run that uses each registered option: every task (its chain), strategy,
    generator, finetune kind (with a task it trains on and a benchmark of what it produces), benchmark (scoring a
    saved model of the kind it needs) and AlpacaEval judge."""
    from fac_lightning.evaluation import BENCHMARKS
    from fac_lightning.finetune import FINETUNES

    def fill(*choices: str) -> list[str]:
        return [override for choice in choices for override in FILL.get(choice, [])]

    runs = [(f"task={t}", "train.py", [f"task={t}", *fill(f"task={t}")]) for t in options("task")]
    runs += [(f"synthesis={s}", "synthesize.py", [f"synthesis={s}"]) for s in options("synthesis")]
    runs += [(f"generator={g}", "synthesize.py", [f"generator={g}", "synthesis=fac", *fill(f"generator={g}")])
             for g in options("generator")]
    formats = {t: compose("train.py", [f"task={t}"], work).task.row_format for t in options("task")}
    kinds = {b: compose("evaluate.py", [f"benchmark={b}"], work).benchmark.kind for b in options("benchmark")}
    for f in options("finetune"):
        cls = FINETUNES.get(compose("train.py", [f"finetune={f}"], work).finetune.kind).cls
        task = next((t for t in options("task") if formats[t] in cls.consumes), None)
        bench = next((b for b in options("benchmark") if BENCHMARKS.get(kinds[b]).cls.needs == cls.produces), None)
        if task and bench:
            runs.append((f"finetune={f}", "train.py", [f"task={task}", f"finetune={f}", f"benchmark={bench}",
                                                       *fill(f"benchmark={bench}")]))
    for b in options("benchmark"):
        needs = BENCHMARKS.get(kinds[b]).cls.needs
        task = next((t for t in options("task") if b == "caa_ab" and formats[t] == "ab_item"), "toxicity")
        runs.append((f"benchmark={b}", "evaluate.py", ["mode=benchmark", f"benchmark={b}",
                                                       f"model={saved_model(work, needs, task)}", *fill(f"benchmark={b}")]))
    reward_model = saved_model(work, "reward_model", "reward")
    for j in options("benchmark/judge"):
        judge = [f"benchmark.judge.model={reward_model}"] if j == "reward_model" else []
        runs.append((f"benchmark/judge={j}", "evaluate.py", [
            "mode=benchmark", "benchmark=alpacaeval", f"benchmark/judge={j}", *judge, *fill("benchmark=alpacaeval"),
            f"model={saved_model(work, 'chat_model', 'instruction')}"]))
    return runs


def not_utf8(work: Path, name: str) -> Path:
    """A file named like ``name`` whose first line is Latin-1."""
    path = work / "not_utf8" / Path(name).name.removesuffix(".gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes('{"text": "caf\xe9"}\n'.encode("latin-1"))
    return path


def not_json_model(work: Path) -> Path:
    folder = work / "models" / "not_json"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text('{"produces": "classifier",\n')
    return folder


def broken(requirement, work: Path) -> list[tuple[str, list[str], tuple[str, ...], str]]:
    """Each way to break one requirement: (what, overrides, hidden modules, what the message must name)."""
    missing = work / "missing"
    if isinstance(requirement, DataFile):
        key = requirement.key
        if not Path(str(requirement.value)).suffix:  # the key names the file (an annotator), not its path
            return [("missing file", [f"{key}=no_such_{key.rsplit('.', 1)[-1]}"], (), key)]
        cases = [("missing file", [f"{key}='{missing / requirement.path.name}'"], (), key)]
        if requirement.rows:
            bad = not_utf8(work, requirement.path.name)
            cases.append(("file not UTF-8", [f"{key}='{bad}'"], (), f"{bad}:1: not UTF-8"))
        return cases
    if isinstance(requirement, Source):
        key, name = requirement.key, Path(requirement.source.local_path or "rows.jsonl").name
        cases = [("missing file", [f"{key}.local_path='{missing / name}'", f"{key}.hub_id=null"], (),
                  f"{key}.local_path")]
        if requirement.rows:  # a large SAE corpus is read (and a decode error named) at its stage, not in preflight
            bad = not_utf8(work, name)
            cases.append(("file not UTF-8", [f"{key}.local_path='{bad}'"], (), f"{bad}:1: not UTF-8"))
        return cases
    if isinstance(requirement, SavedModel):
        return [("missing model", [f"{requirement.key}='{missing / 'model'}'"], (), requirement.key),
                ("model.json not JSON", [f"{requirement.key}='{not_json_model(work)}'"], (), "model.json:2: not valid JSON")]
    if isinstance(requirement, Package):
        return [(f"no {requirement.module}", [], (requirement.module,), f"imports {requirement.module!r}")]
    if isinstance(requirement, Endpoint):
        return [("endpoint silent", [f"{requirement.key}={SILENT}"], (), requirement.key)]
    raise TypeError(f"no census case for {type(requirement).__name__}")


def generated_cases(work: Path) -> tuple[list[Case], list[str]]:
    """The generated cases, and the planned runs that could not be planned (each a line saying why)."""
    config.register_configs()
    cases, seen, unplanned = [], set(), []
    for option, entry, overrides in planned_runs(work):
        try:
            cfg = compose(entry, overrides, work)
            requirements = plan(cfg).requirements(entry_uses(entry, cfg))
        except Exception as e:  # noqa: BLE001 - reported, so a new option that cannot be planned is seen
            unplanned.append(f"{option} ({entry} {' '.join(overrides)}): {type(e).__name__}: {e}")
            continue
        for requirement in requirements:
            for what, extra, hide, expect in broken(requirement, work):
                if (tuple(extra), hide) in seen:  # broken the same way in an earlier run (the SAE corpus, a part)
                    continue
                seen.add((tuple(extra), hide))
                cases.append(Case(entry, [*overrides, *extra], {}, hide, expect,
                                  f"{option}: {type(requirement).__name__} {what}"))
    return cases, unplanned


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
    paths["latin1"] = folder / "latin1.jsonl"
    paths["latin1"].write_bytes('{"text": "a caf\xe9 crime", "label": 1}\n'.encode("latin-1"))
    paths["numbers"] = folder / "numbers.json"
    paths["numbers"].write_text("[1, 2, 3]")
    paths["model_not_json"] = folder / "saved_model" / "model.json"
    paths["model_not_json"].parent.mkdir()
    paths["model_not_json"].write_text('{"kind": "classifier_head",\n "produces": classifier}')
    return paths


def hand_written_cases(files: dict[str, Path], empty_dir: Path) -> list[Case]:
    """The hand-written bad inputs: (entry point, overrides, extra environment)."""
    openai = ["generator=openai", "generator.model=m", "generator.base_url=http://localhost:8000/v1"]
    return [Case(*case) for case in [
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
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=toxicchat"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "synthesis.temperature=-1"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "finetune.warmup_ratio=2"], {}),
        ("train.py", ["task=reward", "finetune=reward_head", "benchmark=hh_pairs", "synthesis=seed_only",
                      f"task.parts.seed.sources.0.local_path={files['not_pairs']}", "task.parts.seed.sources.0.skip_rows=0",
                      "task.parts.seed.sources.0.skip_invalid=false"], {}),
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
        # issue 30's classes, beside the generated cases
        ("train.py", ["trainer=gpu"], {}),
        ("train.py", ["backbone.device=cuda"], {}),
        ("train.py", ["seed=-1"], {}),
        ("synthesize.py", ["generator=vllm", "synthesis=fac"], {}),
        ("train.py", ["task=sycophancy", "benchmark.path=caa/missing.jsonl.gz"], {}),
        ("train.py", ["task=reward", "benchmark=rewardbench_offline", "finetune=reward_head",
                      "benchmark.xstest_prompts=xstest/missing.jsonl.gz"], {}),
        ("train.py", [f"task.parts.seed.sources.0.local_path={files['latin1']}"], {}),
        ("train.py", ["synthesis=seed_only", f"task.parts.seed.sources.0.local_path={files['numbers']}"], {}),
        ("evaluate.py", ["mode=benchmark", f"model={files['model_not_json'].parent}"], {}),
    ]]


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


def run_case(case: Case, work: Path, timeout: float) -> dict:
    artifacts = work / "artifacts"
    command = [sys.executable, case.entry, *case.overrides, f"paths.artifacts_dir={artifacts}", "logger=csv",
               f"hydra.run.dir={work / 'run'}"]
    site = work.parent / "site"  # sitecustomize.py hiding the case's modules
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", HIDE_ENV: ",".join(case.hide),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])), **case.env}
    started = time.time()
    try:
        done = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        output, code = (e.stdout or b"").decode() + (e.stderr or b"").decode(), "timeout"
    seconds = time.time() - started
    heavy = HEAVY.search(output) or any(artifacts.rglob("*.partial"))
    message = user_message(output)
    hidden = [f"without {m}" for m in case.hide]
    return {"input": " ".join([case.entry, *(f"{k}=…" for k in case.env), *hidden, *case.overrides]),
            "origin": case.origin, "message": message, "exit": code, "seconds": seconds,
            "early": not heavy and code not in (0, "timeout"),
            "names": None if case.expect is None else case.expect in message}


def shorten(text: str, root: Path, limit: int = 420) -> str:
    text = text.replace(str(root), "<tmp>").replace(str(ROOT), ".").replace(str(DATA_DIR), "<data>")
    text = text.replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="")
    parser.add_argument("--generated", action="store_true", help="only the cases generated from the registries")
    parser.add_argument("--hand-written", action="store_true", help="only the hand-written cases")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "empty_mirror").mkdir()
        generated, unplanned = generated_cases(root / "generated")
        hand = hand_written_cases(data_files(root), root / "empty_mirror")
        chosen = generated if args.generated else hand if args.hand_written else hand + generated
        rows = []
        for i, case in enumerate(chosen):
            if args.only not in " ".join([case.entry, *case.overrides, case.origin]):
                continue
            result = run_case(case, root / f"case{i}", args.timeout)
            rows.append(result)
            print(f"[{len(rows)}] {result['input']}: {result['seconds']:.0f} s, early={result['early']}, "
                  f"names={result['names']}", file=sys.stderr, flush=True)
        print("| # | input | origin | the message the user gets | before heavy work? | names it? | s |")
        print("|--:|---|---|---|---|---|--:|")
        for i, r in enumerate(rows, start=1):
            when = "before" if r["early"] else f"**AFTER** (exit {r['exit']})"
            names = {None: "", True: "yes", False: "**no**"}[r["names"]]
            print(f"| {i} | `{shorten(r['input'], root, 240)}` | {r['origin']} | {shorten(r['message'], root)} | "
                  f"{when} | {names} | {r['seconds']:.0f} |")
        n_generated = sum(r["origin"] != "hand-written" for r in rows)
        named = [r for r in rows if r["names"] is not None]
        print(f"\n{sum(r['early'] for r in rows)} of {len(rows)} inputs fail early with one message "
              f"({n_generated} generated from the registries, {len(rows) - n_generated} hand-written); "
              f"{sum(r['names'] for r in named)} of the {len(named)} generated name the key, file or package.")
        for line in unplanned:
            print(f"could not plan a run for {shorten(line, root)}")


if __name__ == "__main__":
    main()
