"""CoT-Self-Instruct (Yu et al., Meta FAIR, arXiv 2507.23751; no released code): each prompt shows two seed rows of
the same category and asks the generator to reason in three labelled steps (the elements the two share, a plan, then
one #Synthetic Prompt#); only the Step-3 text is kept. Then the paper's filters:

- RIP (rows that cannot be verified: queries, preference pairs, instructions): ``rip_samples`` (K) responses are
  sampled for each synthetic prompt and scored, by a reward model of this framework (``rip_reward_model``: a saved
  ``reward_head`` / ``reward_lora`` folder) or else by the generator as judge (``prompts.rip_judge``, a 1-10 score;
  a reply without a number scores 0); the prompt's score is the minimum over its K responses, and of each unit's
  prompts the best ``rip_keep`` share is kept, ties at the cut included (``rip_low_score`` for the rest: with a
  judge that gives no numbers every score is 0 and nothing is cut).
- Answer consistency (A/B items: the answer letter can be checked): the generator is asked ``consistency_samples``
  (K) times which choice shows the behaviour; the item is kept when the majority names its matching letter
  (``inconsistent_answer`` otherwise).

Categories: the seed rows' label for labelled (query) rows, else a k-means cluster of the seed rows' SAE feature
scores (``categories`` clusters, seeded); the two seeds of a prompt come from one category with two or more rows.
Question-first formats are answered by the shared answer prompts (``synthesis/question_first.py``), so the synthetic
prompt is the row's question. Deviations from the paper: the generator is the task's (the embedded 135M model on CPU,
not Llama-3.1-8B / Qwen3-4B), K = 4 and 3 instead of 32 (config), the percentile cut is ours (the paper's summaries do
not give it), the judge is the generator unless a reward model is given, and the WildChat categories are replaced by
the seed rows' labels or clusters.
"""

import math
import random
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING
from sklearn.cluster import KMeans

from fac_lightning.checks import at_least, require, within
from fac_lightning.data.ab_items import letter
from fac_lightning.requirements import SavedModel
from fac_lightning.rows.query import clean_query
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

_STEP3 = re.compile(r"#\s*Synthetic Prompt\s*#\s*:?|Step\s*3\s*[:.)-]?", re.IGNORECASE)
_SCORE = re.compile(r"\b(10|[0-9])(?:\s*/\s*10)?\b")
_LETTER = re.compile(r"\(?\b([A-B])\b\)?")


@dataclass
class CoTSelfInstructConfig(GenerativeConfig):
    temperature: float = 0.7
    """The paper's generation decoding (Qwen3: T 0.7, top-p 0.8)."""
    top_p: float = 0.8
    categories: int = 4
    """k-means clusters of the seed rows that a prompt's two seeds share (formats without a label)."""
    rip_samples: int = 4
    """K responses per synthetic prompt for RIP (the paper: 32)."""
    rip_keep: float = 0.5
    """Share of each unit's synthetic prompts that RIP keeps, highest minimum score first."""
    rip_reward_model: str | None = None
    """A reward model saved by this framework (its folder) that scores RIP's responses; None = the generator judges."""
    consistency_samples: int = 3
    """K answers of the generator for the A/B answer-consistency check (majority vote)."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "categories", "rip_samples", "consistency_samples")
        within(self, "rip_keep", 0, 1, low_open=True)
        self.one_sample_when_greedy(rip_samples=self.rip_samples, consistency_samples=self.consistency_samples)


@dataclass
class CoTSelfInstructPrompts(QuestionFirstPrompts):
    system: str | None = None
    template: str = MISSING
    """The three-step template; placeholders {prompt1}, {prompt2}."""
    respond: str = "{question}"
    """RIP: the user turn a response is sampled for; placeholder {question}."""
    rip_judge: str | None = None
    """RIP with the generator as judge: asks for a 1-10 score; placeholders {question}, {answer}."""
    consistency: str | None = None
    """A/B items: asks which choice shows the behaviour; placeholder {item} (the question with its choices)."""


def step3(raw: str) -> str:
    """The text after the last Step-3 / #Synthetic Prompt# marker ('' when the reply has none)."""
    marks = list(_STEP3.finditer(raw))
    return clean_query(raw[marks[-1].end():]) if marks else ""


@STRATEGIES.register("cot_self_instruct", CoTSelfInstructConfig)
class CoTSelfInstructStrategy(Strategy):
    Prompts = CoTSelfInstructPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def requirements(self, data_dir):
        if self.cfg.rip_reward_model is None:
            return []
        return [SavedModel("synthesis.rip_reward_model", self.cfg.rip_reward_model, ": give the folder a reward_head / "
                           "reward_lora run saved, or null to let the generator judge", "reward_model")]

    def start(self) -> None:
        require(len(self.context.seed_texts) >= 2, "task.parts.seed", len(self.context.seed_texts),
                "synthesis=cot_self_instruct shows two seed rows per prompt: the seed part needs at least 2")
        if self.task.row_format == "ab_item":
            require(self.prompts.consistency is not None, "prompts.consistency", None,
                    f"A/B items are checked for answer consistency: conf/prompts/{self.task.name}/"
                    "cot_self_instruct.yaml needs it")
        elif self.cfg.rip_reward_model is None:
            require(self.prompts.rip_judge is not None, "prompts.rip_judge", None,
                    "RIP without synthesis.rip_reward_model asks the generator to judge: the prompts need rip_judge")
        self.category_rows = self.categories()
        self.reward_model = None
        if self.cfg.rip_reward_model and self.task.row_format != "ab_item":
            from fac_lightning.finetune.base import load_model

            self.reward_model = load_model(self.cfg.rip_reward_model, self.context.cache_dir,
                                           self.context.scorer.backbone)

    def categories(self) -> list[list[int]]:
        """Seed row indices per category with at least two rows (all seeds as one when none has two)."""
        rows = self.context.seed_rows
        if "label" in rows[0]:
            labels = [r["label"] for r in rows]
        else:
            k = min(self.cfg.categories, len(rows))
            features = self.context.scores([self.format.scored(r) for r in rows])
            labels = KMeans(n_clusters=k, n_init=10, random_state=self.seed).fit_predict(features).tolist()
        groups = [[i for i, lab in enumerate(labels) if lab == c] for c in dict.fromkeys(labels)]
        return [g for g in groups if len(g) >= 2] or [list(range(len(rows)))]

    def prompt(self, rng: random.Random) -> tuple[str, int]:
        category = rng.randrange(len(self.category_rows))
        first, second = rng.sample(self.category_rows[category], 2)
        texts = self.context.seed_texts
        return self.prompts.template.format(prompt1=texts[first], prompt2=texts[second]), category

    def chat(self, user: str) -> list[dict[str, str]]:
        system = [{"role": "system", "content": self.prompts.system}] if self.prompts.system else []
        return [*system, {"role": "user", "content": user}]

    def rip_scores(self, questions: list[str], unit: int, writer: RowWriter) -> np.ndarray:
        """Each question's minimum score over K sampled responses."""
        chats = [[{"role": "user", "content": self.prompts.respond.format(question=q)}] for q in questions]
        responses = self.generator.generate(chats, self.params(unit, self.cfg.rip_samples, "rip_responses"))
        pairs = [(q, r) for q, rs in zip(questions, responses, strict=True) for r in rs]
        if self.reward_model is not None:
            scores = self.reward_model.score([[{"role": "user", "content": q}, {"role": "assistant", "content": r}]
                                              for q, r in pairs])
        else:
            judge = [[{"role": "user", "content": self.prompts.rip_judge.format(question=q, answer=r)}]
                     for q, r in pairs]
            verdicts = self.generator.generate(judge, self.params(unit, 1, "rip_judge"))
            found = [_SCORE.search(v) for (v,) in verdicts]
            writer.tally("rip_judge_without_score", sum(m is None for m in found))
            scores = np.array([float(m.group(1)) if m else 0.0 for m in found])
        return np.asarray(scores, dtype=float).reshape(len(questions), self.cfg.rip_samples).min(axis=1)

    def consistent(self, row: dict, unit: int) -> bool:
        chat = [{"role": "user", "content": self.prompts.consistency.format(item=row["question"])}]
        (answers,) = self.generator.generate([chat], self.params(unit, self.cfg.consistency_samples, "consistency"))
        letters = [m.group(1) for m in (_LETTER.search(a) for a in answers) if m]
        majority = Counter(letters).most_common(1)
        return bool(majority) and majority[0][0] == letter(row["answer_matching_behavior"]) and \
            majority[0][1] > len(answers) / 2

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        rng = random.Random(self.unit_seed(unit))
        drawn = [self.prompt(rng) for _ in range(self.cfg.prompts_per_call)]
        outputs = self.generator.generate([self.chat(p) for p, _ in drawn], self.params(unit))
        writer.tally("candidates", len(drawn))
        kept = []
        for (prompt, category), (raw,) in zip(drawn, outputs, strict=True):
            question = step3(raw)
            if question:
                kept.append((prompt, category, question))
            else:
                writer.reject("no_step3")
        scores = [None] * len(kept)
        if kept and self.task.row_format != "ab_item":
            scores = self.rip_scores([q for *_, q in kept], unit, writer).tolist()
            cut = sorted(scores, reverse=True)[math.ceil(self.cfg.rip_keep * len(scores)) - 1]
            low = [s < cut for s in scores]
            if any(low):
                writer.reject("rip_low_score", sum(low))
            kept = [k for k, out in zip(kept, low, strict=True) if not out]
            scores = [s for s, out in zip(scores, low, strict=True) if not out]
        candidates = self.candidates_from([q for *_, q in kept], unit)
        for (prompt, category, question), score, raw in zip(kept, scores, candidates, strict=True):
            fields, _ = self.format.parse(raw)
            if self.task.row_format == "ab_item" and fields and not self.consistent(fields, unit):
                writer.reject("inconsistent_answer")
                continue
            writer.offer(raw, self.provenance(unit, prompt, category=category, synthetic_prompt=question,
                                              rip_min_score=score))
