"""FAC two-step synthesis (paper §6.2, Alg. 1-2), one unit per missing feature.

Step 1: a feature-aware prompt (description + top spans) -> n candidates scored by g_i; x+ = argmax (must exceed
delta), x- = argmin. If no candidate exceeds delta, x+ falls back to the anchor sample with the top span (recorded in
provenance). Step 2: prompt with (x+, x-) as contrastive demonstrations -> m candidates; keep those with
g_i > delta, best first. ``two_step=false`` filters and ranks the Step 1 candidates instead (Table 10 ablation).
The budget is spread evenly over the first ``feature_ratio`` share of the missing features.
"""

import math
from collections.abc import Iterator

import numpy as np

from fac_lightning.synthesis.base import RowWriter, Strategy, register_strategy
from fac_lightning.synthesis.rows import parse_candidate, row_conversation, row_demonstration


@register_strategy
class FACStrategy(Strategy):
    name = "fac"
    row_formats = ("query", "preference_pair")

    def __init__(self, *args):
        super().__init__(*args)
        missing = self.context.missing
        self.features = missing[: math.ceil(len(missing) * self.cfg.feature_ratio)]
        if not self.features:
            raise ValueError("synthesis=fac: the seed data already covers every relevant anchor feature "
                             "(no missing features at this delta); nothing to target")
        self.per_feature = max(1, math.ceil(self.context.n_samples / len(self.features)))

    def units(self) -> Iterator[int]:
        yield from range(3 * len(self.features))  # up to three passes when candidates keep failing

    def description(self, feature: int) -> tuple[str, str]:
        record = self.context.records.get(feature, {})
        explanation = record.get("explanation") or "see the examples"
        spans = self.context.spans.get(feature, [])[: self.cfg.spans_in_prompt]
        return explanation, "\n".join(f"- {' '.join(s.text.split())}" for s in spans)

    def fallback_positive(self, feature: int) -> str:
        spans = self.context.spans.get(feature, [])
        return self.context.anchor_texts[spans[0].sample] if spans else self.context.seed_texts[0]

    def candidates(self, prompt: str, unit: int, n: int, feature: int, writer: RowWriter):
        """Sample n candidates; return the parseable ones (raw text, row fields) and their g_i (rejecting the rest)."""
        parsed = []
        for raw in self.generator.generate([self.chat(prompt)], self.params(unit, n))[0]:
            fields, reason = parse_candidate(raw, self.task.row_format)
            if fields is None:
                writer.reject(reason)
            else:
                parsed.append((raw, fields))
        scores = self.context.scores([row_conversation(f) for _, f in parsed])[:, feature]
        return parsed, scores

    def keep_best(self, writer: RowWriter, parsed, scores, provenance: dict) -> None:
        accepted = 0
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] <= self.context.delta:
                writer.reject("below_delta")
            elif accepted >= self.per_feature:
                writer.reject("feature_quota_filled")
            elif writer.offer(parsed[i][0], {**provenance, "score": float(scores[i])}):
                accepted += 1

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        feature = self.features[unit % len(self.features)]
        explanation, spans = self.description(feature)
        step1 = self.task.prompts.feature_step1.format(description=explanation, spans=spans)
        parsed, scores = self.candidates(step1, unit, self.cfg.n, feature, writer)
        base = {"target_feature": feature, "two_step": self.cfg.two_step}
        if not self.cfg.two_step:
            self.keep_best(writer, parsed, scores, self.provenance(unit, step1, **base, step=1))
            return
        if len(parsed) and scores.max() > self.context.delta:
            positive, pair_source = row_demonstration(parsed[int(scores.argmax())][1]), "step1"
        else:
            positive, pair_source = self.fallback_positive(feature), "anchor_fallback"
        negative = (row_demonstration(parsed[int(scores.argmin())][1]) if len(parsed)
                    else self.context.seed_texts[unit % len(self.context.seed_texts)])
        step2 = self.task.prompts.feature_step2.format(description=explanation, spans=spans, positive=positive,
                                                       negative=negative)
        parsed2, scores2 = self.candidates(step2, unit + 1_000_000, self.cfg.m, feature, writer)
        self.keep_best(writer, parsed2, scores2, self.provenance(
            unit, step2, **base, step=2, pair_source=pair_source, positive=positive, negative=negative))
