"""Selection from a real pool (no generator): training sets of the same budget that cover many or few of the task's
missing features (``select_fac``, ``select_anti``) or none in particular (``select_random``), so that coverage can be
tested against the downstream metric at equal budget (paper §5.2, RQ2), and the fewest pool rows that cover the
missing features can be picked (MISSION §8).

The pool is a task part (``synthesis.pool``, default ``full_dataset``) or a file of rows in the task's format (a row
set folder or a rows ``.jsonl``; its content is part of the row set's key).
Each pool row is scored once through its cached feature table (the conversation ``RowFormat.scored`` gives: a query's
user turn, a preference pair's prompt + chosen answer, an A/B item's question + matching letter, an instruction +
its response), so every budget, seed and mode reads the same table. A row *covers* a missing feature when its score
exceeds delta. Its cost is one row, or (``budget_unit: tokens``) its backbone tokens, the budget then being
``n_samples`` rows' worth: n_samples x the pool's mean tokens per row.

``select_fac`` is greedy set cover: it repeatedly takes the row with the largest gain per unit of cost, the gain being
(``weighting``) the number of still-uncovered missing features it activates (``binary``), their summed anchor mean
activation (``magnitude``, the FAC variant's weights) or the increase of the saturated frequency objective
``sum_f min(1, count_f / (n_samples * p_anchor(f)))`` (``frequency``). Ties go to the row whose new features are more
frequent on the anchor. Once every missing feature is covered, the binary and magnitude gains are 0 and the choice
falls to the frequency gain (each row's provenance says which criterion decided: ``criterion``), then to a seeded
random order. Under a token budget this is the cost-effective greedy of budgeted maximum coverage (Khuller, Moss &
Naor 1999): rows that no longer fit are skipped. ``select_anti`` takes the same key's minimum at every step (the rows
that add the fewest missing features: the low-coverage end). ``select_random`` draws seeded uniform rows; with
``match_length_of`` it runs that selection and, for each of its rows, draws a random pool row from the same length
stratum (token-count quantiles of the pool), which isolates coverage from row length.

The whole order is computed at the start (deterministic in the seed and the table); each unit keeps one row, so a
killed run resumes at the row it reached.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fac_lightning.checks import ConfigError, at_least, require
from fac_lightning.data.task_parts import task_part
from fac_lightning.features.fac import WEIGHTINGS
from fac_lightning.files import DataError, read_rows
from fac_lightning.synthesis import STRATEGIES
from fac_lightning.synthesis.base import RowWriter, Strategy, SynthesisConfig

BUDGET_UNITS = ("rows", "tokens")
LENGTH_MATCHED = ("select_fac", "select_anti")


@dataclass
class SelectionConfig(SynthesisConfig):
    pool: str = "full_dataset"
    """The task part (``task.parts``) the rows are selected from, or a row set folder / rows ``.jsonl`` file in the
    task's row format (e.g. another strategy's ``artifacts/synthetic/<...>``)."""
    weighting: str = "binary"
    """Gain of a row: ``binary`` (new missing features), ``magnitude`` (their anchor mean activation) or
    ``frequency`` (the saturated frequency objective); the three FAC variants."""
    budget_unit: str = "rows"
    """``rows``: n_samples rows; ``tokens``: n_samples rows' worth of backbone tokens (the pool's mean per row)."""

    def __post_init__(self):
        require(self.weighting in WEIGHTINGS, "weighting", self.weighting, f"choose from {list(WEIGHTINGS)}")
        require(self.budget_unit in BUDGET_UNITS, "budget_unit", self.budget_unit,
                f"choose from {list(BUDGET_UNITS)}")


@dataclass
class RandomSelectionConfig(SelectionConfig):
    match_length_of: str | None = None
    """None: uniform rows. ``select_fac`` / ``select_anti``: one random row from the same length stratum for each row
    that selection keeps (the same weighting and budget)."""
    length_strata: int = 10
    """Token-count quantile bins of the pool used by ``match_length_of``."""

    def __post_init__(self):
        super().__post_init__()
        require(self.match_length_of in (None, *LENGTH_MATCHED), "match_length_of", self.match_length_of,
                f"choose from {list(LENGTH_MATCHED)} or null")
        at_least(self, 1, "length_strata")


@dataclass
class Pick:
    row: int
    """Index of the pool row."""
    criterion: str
    """What decided the pick: the weighting's gain, ``frequency`` (after full cover), ``random`` or the length
    ``stratum`` it was matched in."""
    new_features: list[int]
    """The missing features (SAE latent ids) this row covered that the rows before it had not."""


class CoverState:
    """The greedy's bookkeeping over the pool's (rows x missing features) activations."""

    def __init__(self, active_NM: np.ndarray, anchor_count_M: np.ndarray, anchor_rows: int,
                 anchor_mean_M: np.ndarray, weighting: str, target_rows: int):
        self.active_NM, self.weighting = active_NM.astype(np.float64), weighting
        self.anchor_count_M = anchor_count_M.astype(np.float64)
        self.weight_M = anchor_mean_M if weighting == "magnitude" else np.ones(active_NM.shape[1])
        self.target_M = np.maximum(target_rows * anchor_count_M / max(anchor_rows, 1), 1e-9)
        """count_f at which feature f reaches its anchor frequency in a set of ``target_rows`` rows."""
        self.count_M = np.zeros(active_NM.shape[1])

    def gains(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row: (the weighting's gain, anchor frequency of its new features, frequency gain)."""
        uncovered_M = (self.count_M == 0).astype(np.float64)
        fill_M = np.minimum(1.0, (self.count_M + 1) / self.target_M) - np.minimum(1.0, self.count_M / self.target_M)
        frequency_N = self.active_NM @ fill_M
        primary_N = frequency_N if self.weighting == "frequency" else self.active_NM @ (uncovered_M * self.weight_M)
        return primary_N, self.active_NM @ (uncovered_M * self.anchor_count_M), frequency_N

    def add(self, row: int) -> np.ndarray:
        """Count the row in; returns the (column) positions of the features it newly covers."""
        new_M = np.flatnonzero((self.active_NM[row] > 0) & (self.count_M == 0))
        self.count_M += self.active_NM[row]
        return new_M


def greedy_cover(state: CoverState, cost_N: np.ndarray, budget: float, rng: np.random.Generator,
                 least: bool = False, feature_ids: np.ndarray | None = None) -> list[Pick]:
    """Rows in greedy order until the budget is spent: each step the largest (``least``: smallest) gain per cost,
    compared lexicographically as (gain, anchor frequency of the new features, frequency gain, seeded random).
    ``feature_ids``: the SAE latent of each column (default: the column index)."""
    feature_ids = np.arange(state.active_NM.shape[1]) if feature_ids is None else feature_ids
    tiebreak_N = rng.permutation(len(cost_N)).astype(np.float64)
    available_N, spent, picks = np.ones(len(cost_N), dtype=bool), 0.0, []
    while True:
        fits_N = available_N & (cost_N <= budget - spent)
        if not fits_N.any():
            return picks
        primary_N, tie_N, frequency_N = (g / cost_N for g in state.gains())
        keys = (tiebreak_N, frequency_N, tie_N, primary_N) if least else (-tiebreak_N, frequency_N, tie_N, primary_N)
        order = np.lexsort(keys)
        candidates = order[fits_N[order]]
        row = int(candidates[0] if least else candidates[-1])
        criterion = ("least_gain" if least else state.weighting if primary_N[row] > 0
                     else "frequency" if frequency_N[row] > 0 else "random")
        picks.append(Pick(row, criterion, feature_ids[state.add(row)].tolist()))
        available_N[row] = False
        spent += cost_N[row]


def random_fill(cost_N: np.ndarray, budget: float, rng: np.random.Generator) -> list[int]:
    """Seeded uniform rows, each taken if it still fits the budget."""
    taken, spent = [], 0.0
    for row in rng.permutation(len(cost_N)):
        if cost_N[row] <= budget - spent:
            taken.append(int(row))
            spent += cost_N[row]
    return taken


def length_matched(reference: list[int], tokens_N: np.ndarray, strata: int, rng: np.random.Generator) -> list[int]:
    """For each reference row, a random pool row of the same token-count stratum (quantile bins; the nearest stratum
    with rows left when its own is used up), drawn without replacement."""
    edges = np.unique(np.quantile(tokens_N, np.linspace(0, 1, strata + 1))[1:-1])
    stratum_N = np.searchsorted(edges, tokens_N, side="right")
    left = {s: list(rng.permutation(np.flatnonzero(stratum_N == s))) for s in range(len(edges) + 1)}
    drawn = []
    for row in reference:
        want = int(stratum_N[row])
        nearest = min((s for s in left if left[s]), key=lambda s: (abs(s - want), s))
        drawn.append(int(left[nearest].pop()))
    return drawn


class Selection(Strategy):
    generative = False
    budgeted = True
    row_formats = ("query", "preference_pair", "ab_item", "instruction_response")

    def __init__(self, *args):
        super().__init__(*args)
        self.part = self.cfg.pool if self.cfg.pool in self.task.parts else None
        self.pool_file = None if self.part else Path(self.cfg.pool)
        require(self.part is not None or self.pool_file.exists(), "synthesis.pool", self.cfg.pool,
                f"neither a part of task {self.task.name!r} ({list(self.task.parts)}) nor an existing row set folder "
                "or rows .jsonl file")
        require(self.n_samples is not None and self.n_samples >= 1, "n_samples", self.n_samples,
                f"synthesis={self.name} selects n_samples rows (or rows' worth of tokens): set it >= 1")
        self.picks: list[Pick] = []

    def fingerprint(self, data_dir) -> str | None:
        """A file pool's content (a task part's is in the key already)."""
        return None if self.pool_file is None else hashlib.sha256(self.rows_file().read_bytes()).hexdigest()[:12]

    def rows_file(self) -> Path:
        return self.pool_file / "rows.jsonl" if self.pool_file.is_dir() else self.pool_file

    def pool_rows(self, data_dir) -> list[dict]:
        """The pool as rows of the task's format: a task part's examples, or a row file's rows (provenance dropped);
        a row that is not one fails naming the part's example or the file's line."""
        if self.part is not None:
            rows = []
            for i, example in enumerate(task_part(self.task, self.part, data_dir), start=1):
                try:
                    rows.append(self.format.from_example(example))
                except ValueError as e:
                    raise ConfigError("synthesis.pool", self.cfg.pool, f"example {i} of the pool makes no "
                                      f"{self.task.row_format!r} row (task {self.task.name!r}): {e}") from None
            return rows
        path, rows = self.rows_file(), []
        require(path.is_file(), "synthesis.pool", self.cfg.pool, f"{path} does not exist (a row set folder holds a "
                "rows.jsonl)")
        for i, row in enumerate(read_rows(path), start=1):
            problem = self.format.invalid(row)
            if problem:
                raise DataError(f"{path}, row {i}: not a {self.task.row_format!r} row of task {self.task.name!r} "
                                f"(synthesis.pool): {problem}")
            rows.append({k: v for k, v in row.items() if k != "provenance"})
        return rows

    def check_data(self, data_dir) -> None:
        """The pool has rows of the task's format and can meet the budget (before any model loads)."""
        self.check_pool(self.pool_rows(data_dir))

    def check_pool(self, rows: list[dict]) -> None:
        if not rows:
            raise ConfigError("synthesis.pool", self.cfg.pool, f"is empty for task {self.task.name!r}: nothing to "
                              "select from")
        if self.n_samples > len(rows):
            raise ConfigError("n_samples", self.n_samples, f"larger than the pool synthesis.pool={self.cfg.pool!r} "
                              f"({len(rows)} rows)")

    def start(self) -> None:
        self.pool = self.pool_rows(self.context.data_dir)
        self.check_pool(self.pool)
        conversations = [self.format.scored(r) for r in self.pool]
        name = self.part or f"file-{self.fingerprint(self.context.data_dir)}"
        table = self.context.table(f"{self.task.name}-pool-{name}", conversations)
        missing = np.asarray(self.context.missing, dtype=np.int64)
        self.scores_NM = table.matrix()[:, missing].toarray()
        self.tokens_N = np.array([len(ids) for ids in self.context.scorer.tokenize(conversations)[0]], dtype=float)
        self.rng = np.random.default_rng(self.seed)
        self.picks = self.select()

    def budget(self) -> tuple[np.ndarray, float]:
        """(cost per pool row, budget) in the configured unit."""
        if self.cfg.budget_unit == "tokens":
            return self.tokens_N, self.n_samples * float(self.tokens_N.mean())
        return np.ones(len(self.pool)), float(self.n_samples)

    def cover(self, least: bool) -> list[Pick]:
        anchor, delta, missing = self.context.anchor, self.context.delta, self.context.missing
        state = CoverState(self.scores_NM > delta, anchor.active_counts(delta)[missing], anchor.num_samples,
                           anchor.mean_active_score(delta)[missing], self.cfg.weighting, self.n_samples)
        return greedy_cover(state, *self.budget(), self.rng, least, np.asarray(missing))

    def with_new_features(self, rows: list[int], criterion: str) -> list[Pick]:
        covered, picks = np.zeros(self.scores_NM.shape[1], dtype=bool), []
        for row in rows:
            active_M = self.scores_NM[row] > self.context.delta
            picks.append(Pick(row, criterion, np.asarray(self.context.missing)[active_M & ~covered].tolist()))
            covered |= active_M
        return picks

    def select(self) -> list[Pick]:
        raise NotImplementedError

    def units(self):
        yield from range(len(self.picks))

    def run_unit(self, unit: int, writer: RowWriter) -> None:
        pick = self.picks[unit]
        writer.keep({**self.pool[pick.row], "provenance": {
            "strategy": self.name, "pool": self.cfg.pool, "pool_row": pick.row, "order": unit, "seed": self.seed,
            "criterion": pick.criterion, "new_missing_features": pick.new_features,
            "tokens": int(self.tokens_N[pick.row])}})


@STRATEGIES.register("select_fac", SelectionConfig)
class SelectFAC(Selection):
    targets_missing = True
    def select(self):
        return self.cover(least=False)


@STRATEGIES.register("select_anti", SelectionConfig)
class SelectAnti(Selection):
    targets_missing = True
    def select(self):
        return self.cover(least=True)


@STRATEGIES.register("select_random", RandomSelectionConfig)
class SelectRandom(Selection):
    def select(self):
        if self.cfg.match_length_of is None:
            return self.with_new_features(random_fill(*self.budget(), self.rng), "random")
        reference = [p.row for p in self.cover(least=self.cfg.match_length_of == "select_anti")]
        return self.with_new_features(length_matched(reference, self.tokens_N, self.cfg.length_strata, self.rng),
                                     "stratum")
