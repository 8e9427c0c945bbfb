"""SAO, Self-Alignment Optimization (Yin et al., arXiv 2510.06652, ``SJY8460/SAO``): the model writes all of its own
preference data. It role-plays a persona to write a user prompt, samples two responses to that prompt, and judges
the pair itself with a ranking prompt (which response is better, 1 or 2); the better one is chosen, the other
rejected.

One unit is one batch of ``prompts_per_call`` personas, drawn seeded per unit from the persona pool
(``synthesis.personas``: a pool packaged in ``synthesis/personas/``, default ``personahub_tool``, or a local
``.jsonl`` / ``.jsonl.gz`` / ``.txt`` file with one persona per line, plain or as ``{"persona": ...}``). For each
persona the generator, under the task's system prompt (what a row of the task is), writes one user prompt of the
task in the persona's voice (``prompts.persona_prompt``; a leading ``User prompt:`` label is stripped). Then:

- ``preference_pair`` rows (reward): two responses are sampled for the prompt (``params(n=2)``, seeded, temperature
  > 0); identical responses are rejected as ``same_responses``; the generator judges the pair greedily
  (``prompts.judge``) and the first standalone 1 or 2 of its reply is the verdict (``judge_unclear`` otherwise). The
  pair goes through the same pair checks (``PreferencePair.parse``) as every synthetic pair.
- the other formats take the prompt stage only: a toxicity row is the prompt itself (a query row); an A/B item's
  question and an instruction are answered by the shared question-first answer prompts
  (``synthesis/question_first.py``), as every other strategy's are.

Provenance records the persona, the generated prompt and (pairs) the judge's reply and verdict; the manifest's
tallies count personas, prompts, judged pairs and verdicts (``verdict/1``, ``verdict/2``, ``verdict/unclear``).

Deviations from the published recipe: the generator and the judge are the task's (the embedded 135M model on CPU,
not the 7-9B instruct models the paper aligns, each judging its own pairs); the persona pool is the 5,000 distinct
personas of PersonaHub's released ``data/tool.jsonl`` sample (``synthesis/personas/README.md``), not PersonaHub's
200,000-persona release of its 1-billion pool; the persona prompt is PersonaHub's own instruction template ("Guess a
prompt that the following persona may ask you to do", ``code/prompt_templates.py``; toxicity asks for a harmful
request, A/B tasks for a question of the task's kind) under the task's system prompt, and the ranking prompt is our
wording of SAO's (SAO's code was not in reach here, so neither wording is theirs); the judge decodes greedily and
reads one verdict, with no position swap; SAO's preference optimization (SimPO, and its iterative rounds) is not part
of synthesis: the framework trains its own finetune (``finetune=``) on the rows, once; the rows pass this framework's
hygiene and pair checks (length ratio, no lazy refusal as the rejected answer), which the paper does not describe;
for formats other than preference pairs only SAO's prompt stage applies (its responses and self-judgement have no
A/B or classifier counterpart), answered question-first.
"""

import hashlib
import json
import random
import re
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

from omegaconf import MISSING

from fac_lightning.checks import ConfigError, at_least, require
from fac_lightning.files import DataError, decoded, read_bytes
from fac_lightning.generation import SamplingParams
from fac_lightning.rows.query import clean_query
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

PERSONA_DIR = Path(__file__).parent / "personas"
"""The packaged persona pools, ``<name>.jsonl.gz`` (their source: ``personas/README.md``)."""
_PROMPT_LABEL = re.compile(r"^\s*(?:\*\*)?\s*(?:user\s+)?prompt\s*(?:\*\*)?\s*:\s*(?:\*\*)?", re.IGNORECASE)
_VERDICT = re.compile(r"\b([12])\b")


def packaged_pools() -> list[str]:
    return sorted(p.name.removesuffix(".jsonl.gz") for p in PERSONA_DIR.glob("*.jsonl.gz"))


def persona_file(spec: str) -> Path:
    """A packaged pool's file (a bare name), else the path as given."""
    if "/" not in spec and "\\" not in spec and not spec.endswith((".jsonl", ".gz", ".txt")):
        return PERSONA_DIR / f"{spec}.jsonl.gz"
    return Path(spec).expanduser()


def load_personas(spec: str) -> list[str]:
    """The distinct personas of a pool, in first-appearance order; a missing or empty pool, or a line that is not a
    persona, fails naming ``synthesis.personas``."""
    path = persona_file(spec)
    if not path.is_file():
        raise ConfigError("synthesis.personas", spec, f"{path} does not exist: give a packaged pool "
                          f"({packaged_pools()}) or a .jsonl / .jsonl.gz / .txt file, one persona per line")
    try:
        text = decoded(path, read_bytes(path))
    except DataError as e:
        raise ConfigError("synthesis.personas", spec, str(e)) from None
    personas = []
    for i, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith("{"):
            try:
                line = json.loads(line).get("persona")
            except (json.JSONDecodeError, AttributeError):
                line = None
            if not isinstance(line, str):
                raise ConfigError("synthesis.personas", spec, f"{path}, line {i}: a JSON line needs a string "
                                  "\"persona\" field")
            line = line.strip()
        if line:
            personas.append(line)
    personas = list(dict.fromkeys(personas))
    if not personas:
        raise ConfigError("synthesis.personas", spec, f"{path} holds no persona")
    return personas


def clean_prompt(raw: str) -> str:
    """A persona prompt as the user would type it: template artefacts and a leading ``User prompt:`` label gone."""
    text = clean_query(raw)
    return clean_query(_PROMPT_LABEL.sub("", text, count=1)) if _PROMPT_LABEL.match(text) else text


@dataclass
class SAOConfig(GenerativeConfig):
    personas: str = "personahub_tool"
    """A packaged persona pool (``fac_lightning/synthesis/personas/<name>.jsonl.gz``) or a local .jsonl / .jsonl.gz
    / .txt file, one persona per line (plain or ``{"persona": ...}``)."""
    prompt_max_new_tokens: int = 96
    """Tokens for the persona prompt (the user message; a query row needs no more)."""
    judge_max_new_tokens: int = 16
    """Tokens for the self-judgement (the verdict is the first standalone 1 or 2 of the reply)."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "prompt_max_new_tokens", "judge_max_new_tokens")


@dataclass
class SAOPrompts(QuestionFirstPrompts):
    system: str | None = None
    """The task's system prompt for the persona stage (what a user message of the task is)."""
    persona_prompt: str = MISSING
    """Asks for one user prompt that the persona would send; placeholder {persona}."""
    respond: str = "{question}"
    """Pair tasks: the user turn each of the two responses is sampled for; placeholder {question}."""
    judge: str | None = None
    """Pair tasks: SAO's ranking prompt; placeholders {question}, {response_1}, {response_2}; the reply is read for
    a standalone 1 or 2."""


@STRATEGIES.register("sao", SAOConfig)
class SAOStrategy(Strategy):
    Prompts = SAOPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def __init__(self, *args):
        super().__init__(*args)
        if self.task.row_format == "preference_pair":
            require(self.cfg.temperature > 0, "synthesis.temperature", self.cfg.temperature,
                    "synthesis=sao samples two responses per prompt for a pair: set a temperature > 0")

    @cached_property
    def personas(self) -> list[str]:
        return load_personas(self.cfg.personas)

    def check_data(self, data_dir) -> None:
        """The persona pool exists and holds personas (before any model loads)."""
        self.personas  # noqa: B018 (loading it is the check)

    def fingerprint(self, data_dir) -> str | None:
        """The persona pool's content (a local file may change under the same name)."""
        return hashlib.sha256("\n".join(self.personas).encode()).hexdigest()[:12]

    def start(self) -> None:
        self.personas  # noqa: B018 (a synthesis started without check_data still fails naming the key)
        if self.task.row_format == "preference_pair":
            require(self.prompts.judge is not None, "prompts.judge", None, f"synthesis=sao judges its pairs: "
                    f"conf/prompts/{self.task.name}/sao.yaml needs a judge")
        if self.task.row_format in ("ab_item", "instruction_response") and not self.question_first:
            keys = " and ".join(f"prompts.{k}" for k in self.format.answer_keys)
            raise ValueError(f"synthesis=sao on task {self.task.name!r} ({self.task.row_format} rows) needs "
                             f"{keys} (conf/prompts/{self.task.name}/sao.yaml)")

    def chat(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.prompts.system}] if self.prompts.system else []
        return [*system, {"role": "user", "content": user}]

    def draw(self, unit: int) -> list[str]:
        """The unit's personas: ``prompts_per_call`` distinct ones (all, for a smaller pool), seeded by the unit."""
        rng = random.Random(self.unit_seed(unit))
        return rng.sample(self.personas, min(self.cfg.prompts_per_call, len(self.personas)))

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        personas = self.draw(unit)
        params = replace(self.params(unit), max_new_tokens=self.cfg.prompt_max_new_tokens)
        outputs = self.generator.generate([self.chat(self.prompts.persona_prompt.format(persona=p))
                                           for p in personas], params)
        writer.tally("personas", len(personas))
        # the recorded (and echo-checked) prompt keeps the persona as its placeholder: a prompt may name its persona
        template = self.chat(self.prompts.persona_prompt)
        drafted = []
        for persona, (raw,) in zip(personas, outputs, strict=True):
            question = clean_prompt(raw)
            if question:
                drafted.append((persona, question))
            else:
                writer.reject("empty")
        writer.tally("prompts", len(drafted))
        if self.task.row_format == "preference_pair":
            return self.run_pair_unit(unit, writer, drafted, template)
        candidates = self.candidates_from([q for _, q in drafted], unit)  # query rows: the prompt itself
        for (persona, question), raw in zip(drafted, candidates, strict=True):
            writer.offer(raw, self.provenance(unit, template, persona=persona, sao_prompt=question))

    def run_pair_unit(self, unit: int, writer: RowWriter, drafted: list[tuple[str, str]], template) -> None:
        chats = [[{"role": "user", "content": self.prompts.respond.format(question=q)}] for _, q in drafted]
        responses = self.generator.generate(chats, self.params(unit, 2, "second_call")) if chats else []
        judged = []
        for (persona, question), (first, second) in zip(drafted, responses, strict=True):
            if " ".join(first.split()) == " ".join(second.split()):
                writer.reject("same_responses")
            else:
                judged.append((persona, question, first, second))
        judge = [[{"role": "user", "content": self.prompts.judge.format(question=q, response_1=a, response_2=b)}]
                 for _, q, a, b in judged]
        verdicts = self.generator.generate(judge, SamplingParams(
            temperature=0.0, max_new_tokens=self.cfg.judge_max_new_tokens, seed=self.unit_seed(unit))) \
            if judge else []
        writer.tally("pairs_judged", len(judged))
        for (persona, question, first, second), (verdict,) in zip(judged, verdicts, strict=True):
            found = _VERDICT.search(verdict)
            writer.tally(f"verdict/{found.group(1) if found else 'unclear'}")
            if found is None:
                writer.reject("judge_unclear")
                continue
            chosen, rejected = (first, second) if found.group(1) == "1" else (second, first)
            writer.offer(self.format.candidate(question, chosen, rejected),
                         self.provenance(unit, template, persona=persona, sao_prompt=question, judge_reply=verdict,
                                         verdict=int(found.group(1))))
