"""FAC two-step synthesis (paper §6.2, Alg. 1-2); one unit is one pass over the missing features.

Step 1: a feature-aware prompt (description + top spans) -> n candidates scored by g_i; x+ = argmax (must exceed
delta), x- = the weakest candidate below it. If no candidate exceeds delta, x+ falls back to the anchor sample with
the top span (recorded in provenance). Step 2: (x+, x-) as contrastive few-shot demonstrations in the chat itself:
the Step 1 prompt answered with x-, the task's ``feature_step2_weak`` reply answered with x+, then its
``feature_step2`` reply asks for one more -> m candidates; keep those with g_i > delta, best first. (As earlier
answers rather than quoted inside one prompt, the demonstrations keep a small generator writing a message instead of
commenting on the quoted ones.) ``two_step=false`` filters and ranks the Step 1 candidates instead (Table 10).
The budget is spread evenly over the first ``feature_ratio`` share of the missing features: each feature may keep
``ceil(n_samples / features)`` rows, and up to ``max_passes`` passes revisit the features whose share is not filled
(each pass samples afresh with its own seed), at most as many features per pass as rows the budget still needs. A pass sends every open feature's prompt to the generator in one call,
so batching engines work on all of them at once.
"""

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from omegaconf import MISSING

from fac_lightning.checks import at_least, within
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import GenerativeConfig, RowWriter, Strategy
from fac_lightning.synthesis.question_first import QuestionFirstPrompts

_OLD_STEP2_PLACEHOLDERS = re.compile(r"\{(?:description|spans|positive|negative)\}")
"""Placeholders of the single-prompt Step 2 template, which the chat-form replies no longer fill."""


@dataclass
class FACConfig(GenerativeConfig):
    n: int = 2
    """Step 1 candidates per feature (paper code: 2)."""
    m: int = 2
    """Step 2 candidates per feature (paper code: 2)."""
    two_step: bool = True
    """false = the one-step ablation (Step 1 candidates filtered and ranked directly; paper Table 10)."""
    feature_ratio: float = 1.0
    """Share of the missing features to target, most frequent first (paper Table 9)."""
    max_passes: int = 20
    """Passes over the missing features; each pass revisits the features whose even share of the budget is not yet
    filled, so the run stops when the budget is full or after this many passes."""
    spans_in_prompt: int = 5
    """Top-activating spans shown in the feature description."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 1, "n", "m", "max_passes")
        within(self, "feature_ratio", 0, 1, low_open=True)
        at_least(self, 0, "spans_in_prompt")
        self.one_sample_when_greedy(n=self.n, m=self.m if self.two_step else 1)


@dataclass
class FACPrompts(QuestionFirstPrompts):
    system: str = MISSING
    """System prompt of every synthesis call."""
    feature_step1: str = MISSING
    """Step 1: write a sample that shows a feature. Placeholders: {description}, {spans}."""
    feature_step2_weak: str = MISSING
    """Step 2, the reply to x- (the Step 1 prompt's weakest answer, shown as an earlier answer): it shows the
    pattern weakly; write another. The generator's answer to it is shown as x+."""
    feature_step2: str = MISSING
    """Step 2, the reply to x+: it shows the pattern strongly; write one more, even stronger. The generator's m
    answers to this are the Step 2 candidates."""


@STRATEGIES.register("fac", FACConfig)
class FACStrategy(Strategy):
    Prompts = FACPrompts
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")
    targets_missing = True

    def __init__(self, *args):
        super().__init__(*args)
        for key in ("feature_step2_weak", "feature_step2"):
            placeholders = _OLD_STEP2_PLACEHOLDERS.findall(getattr(self.prompts, key))
            if placeholders:
                raise ValueError(f"prompts.{key} contains {', '.join(placeholders)}: Step 2's replies are sent as "
                                 "written (the feature card is the Step 1 turn, x+ and x- are earlier answers)")
        if self.cfg.max_passes < 1:
            raise ValueError(f"synthesis.max_passes={self.cfg.max_passes}: fac needs at least one pass over the "
                             "missing features")

    def start(self) -> None:
        missing = self.context.missing
        self.features = missing[: math.ceil(len(missing) * self.cfg.feature_ratio)]
        self.per_feature = max(1, math.ceil(self.n_samples / len(self.features)))

    def units(self) -> Iterator[int]:
        yield from range(self.cfg.max_passes)

    def kept(self, feature: int, writer: RowWriter) -> int:
        """Rows already kept for ``feature`` (over all passes)."""
        return sum(r["provenance"]["target_feature"] == feature for r in writer.rows + writer.pending)

    def description(self, feature: int) -> tuple[str, str]:
        record = self.context.records.get(feature, {})
        explanation = record.get("explanation") or "see the examples"
        spans = self.context.spans.get(feature, [])[: self.cfg.spans_in_prompt]
        return explanation, "\n".join(f"- {' '.join(s.text.split())}" for s in spans)

    def fallback_positive(self, feature: int) -> str:
        spans = self.context.spans.get(feature, [])
        return self.context.anchor_demos[spans[0].sample] if spans else self.context.seed_demos[0]

    def step2_chat(self, step1_prompt: str, positive: str, negative: str) -> list[dict[str, str]]:
        return [*self.chat(step1_prompt), {"role": "assistant", "content": negative},
                {"role": "user", "content": self.prompts.feature_step2_weak},
                {"role": "assistant", "content": positive},
                {"role": "user", "content": self.prompts.feature_step2}]

    def candidates(self, chats: list[list[dict]], features: list[int], step: int, unit: int, writer: RowWriter):
        """The step's n (or m) candidates per chat in one generator call; per chat, the parseable ones (raw text,
        row fields) and their g_i on that chat's feature (the unparseable ones are rejected). Tallies
        ``step<k>_sampled`` and ``step<k>_above_delta`` so a manifest shows how often each step hits its feature."""
        n = self.cfg.n if step == 1 else self.cfg.m
        streams = () if step == 1 else ("second_call",)
        parsed = []
        outputs = self.generator.generate(chats, self.params(unit, n, *streams))
        flat = self.candidates_from([raw for group in outputs for raw in group], unit, *streams)
        for start in range(0, len(flat), n):
            parsed.append([])
            for raw in flat[start : start + n]:
                fields, reason = self.format.parse(raw)
                if fields is None:
                    writer.reject(reason)
                else:
                    parsed[-1].append((raw, fields))
        scores_NF = self.context.scores([self.format.scored(f) for group in parsed for _, f in group])
        bounds = np.cumsum([0] + [len(group) for group in parsed])
        groups = [(group, scores_NF[start:end, feature])
                  for group, start, end, feature in zip(parsed, bounds[:-1], bounds[1:], features)]
        writer.tally(f"step{step}_sampled", n * len(chats))
        writer.tally(f"step{step}_above_delta", int(sum((scores > self.context.delta).sum() for _, scores in groups)))
        return groups

    def keep_best(self, writer: RowWriter, parsed, scores, provenance: dict) -> None:
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] <= self.context.delta:
                writer.reject("below_delta")
            elif self.kept(provenance["target_feature"], writer) >= self.per_feature:
                writer.reject("feature_quota_filled")
            else:
                writer.offer(parsed[i][0], {**provenance, "score": float(scores[i])})

    def targets(self, unit: int, writer: RowWriter) -> list[int]:
        """This pass's features: the open ones (share not filled), but no more of them than rows the budget still
        needs (more could not be kept). When there are more open features than that, the window rotates with the
        pass, so features whose candidates missed do not take every later pass from the ones not yet tried."""
        open_features = [f for f in self.features if self.kept(f, writer) < self.per_feature]
        needed = self.n_samples - len(writer.rows) - len(writer.pending)
        if len(open_features) <= needed:
            return open_features
        start = (unit * needed) % len(open_features)
        return (open_features[start:] + open_features[:start])[:needed]

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        features = self.targets(unit, writer)
        descriptions = [self.description(f) for f in features]
        step1 = [self.prompts.feature_step1.format(description=explanation, spans=spans)
                 for explanation, spans in descriptions]
        chats = [self.chat(p) for p in step1]
        first = self.candidates(chats, features, 1, unit, writer)
        if not self.cfg.two_step:
            for feature, chat, (parsed, scores) in zip(features, chats, first):
                self.keep_best(writer, parsed, scores, self.provenance(
                    unit, chat, target_feature=feature, two_step=False, step=1))
            return
        pairs = [self.contrastive_pair(feature, unit, parsed, scores)
                 for feature, (parsed, scores) in zip(features, first)]
        step2 = [self.step2_chat(prompt, positive, negative) for prompt, (positive, negative, _) in zip(step1, pairs)]
        second = self.candidates(step2, features, 2, unit, writer)
        for feature, chat, (_, _, source), (parsed, scores) in zip(features, step2, pairs, second):
            self.keep_best(writer, parsed, scores, self.provenance(
                unit, chat, target_feature=feature, two_step=True, step=2, pair_source=source))

    def contrastive_pair(self, feature: int, unit: int, parsed, scores) -> tuple[str, str, str]:
        """(x+, x-, where x+ came from): the best Step 1 candidate (the anchor's top-span sample if none exceeds δ)
        and the worst one scoring below x+; with none (one candidate, or all tied: candidates sharing the opening
        that holds the max often tie), a seed sample, which by the definition of a missing feature does not
        activate it."""
        best = int(scores.argmax()) if len(parsed) else -1
        if best >= 0 and scores[best] > self.context.delta:
            positive, source = self.demo(parsed[best][1]), "step1"
        else:
            positive, source, best = self.fallback_positive(feature), "anchor_fallback", -1
        weaker = [i for i in np.argsort(scores, kind="stable") if best < 0 or scores[i] < scores[best]]
        negative = (self.demo(parsed[weaker[0]][1]) if weaker
                    else self.context.seed_demos[unit % len(self.context.seed_demos)])
        return positive, negative, source
