"""Feature cards: a Markdown page per selection of features (id, explanation, relevance, counts, top spans)."""

import numpy as np

from fac_lightning.features.table import FeatureTable


def card(feature: int, table: FeatureTable, labels: np.ndarray, record: dict, relevant: bool, delta: float,
         spans_shown: int = 10) -> str:
    pos = table.active_counts(delta, np.flatnonzero(labels == 1))[feature]
    neg = table.active_counts(delta, np.flatnonzero(labels == 0))[feature]
    verdicts = (f" (verification: {record['verification']}, relevance: {record['relevance']})"
                if "relevance" in record else "")
    lines = [f"### Feature {feature}", "", f"- relevance: **{'relevant' if relevant else 'not relevant'}**{verdicts}"]
    if "explanation" in record:
        lines.append(f"- explanation: {record['explanation']}")
    if "q" in record:
        lines.append(f"- label contrast: log-odds {record['log_odds']:.2f}, BH q = {record['q']:.2e}, "
                     f"firing-rate difference {record['rate_diff']:+.2f}")
    lines += [(f"- fires (> {delta}) on {pos}/{int((labels == 1).sum())} task-positive and "
              f"{neg}/{int((labels == 0).sum())} other anchor samples"), "", "Top-activating spans (score):", ""]
    for i, span in enumerate(table.spans.get(feature, [])[:spans_shown]):
        text = " ".join(span.text.split())
        lines.append(f"{i + 1}. ({span.score:.2f}) {text}")
    return "\n".join(lines) + "\n"


def cards_markdown(features: list[int], table: FeatureTable, labels: np.ndarray, records: dict[int, dict],
                   relevant: np.ndarray, delta: float, title: str) -> str:
    body = [card(f, table, labels, records.get(f, {}), bool(relevant[f]), delta) for f in features]
    return f"# {title}\n\n" + "\n".join(body)
