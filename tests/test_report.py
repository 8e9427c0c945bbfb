"""The sweep's HTML report: its sections from a sweep folder, nothing fetched from the network, and the page as
headless Chromium renders it (Debian's ``chromium``; ``.ci/run`` installs it)."""

import json
import re
import shutil
import subprocess

import pytest

from fac_lightning.report import ROWS_PER_STRATEGY, write_report
from tests.test_leaderboard import metrics, write_runs

REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)
"""A resource the page would fetch from elsewhere (a script, stylesheet, font or image by URL)."""


def sweep(folder):
    """Three strategies x 2 seeds, FAC and distinct-1 varying with the score, and 12 rows per row set."""
    runs = []
    for k, strategy in enumerate(("fac", "magpie", "seed_only")):
        for seed in (0, 1):
            score = 0.2 + 0.1 * k + 0.01 * seed
            run = metrics(strategy, seed, score, 0.3 + 0.2 * k + 0.01 * seed, [f"synthesis={strategy}", f"seed={seed}"],
                          text={"distinct_1": 0.9 - 0.1 * k - 0.02 * seed, "mean_tokens": 40.0 + k})
            rows = folder / "rows" / f"{strategy}-{seed}"
            rows.mkdir(parents=True)
            (rows / "rows.jsonl").write_text("".join(json.dumps({"text": f"<b>{strategy} row {i}</b>", "label": 1,
                                                                 "provenance": {}}) + "\n" for i in range(12)))
            run["synthetic"], run["benchmark"]["base_rate"] = str(rows), 0.132
            runs.append(run)
    write_runs(folder / "sweep", runs)
    return runs


def test_the_report_holds_the_leaderboard_scatters_rows_and_runs_and_fetches_nothing(tmp_path):
    sweep(tmp_path)
    page = write_report(tmp_path / "sweep", tmp_path / "sweep").read_text()
    assert page.count('<table class="dataframe leaderboard">') == 1
    assert "Trivial score (the benchmark's base rate): <b class=\"trivial\">0.132</b>" in page
    metrics_plotted = re.findall(r'<figure class="plot" data-metric="([^"]+)">', page)
    # FAC magnitude is the same in every run (tests.test_leaderboard.metrics): nothing to plot
    assert metrics_plotted == ["fac", "fac_frequency", "text/distinct_1", "text/mean_tokens"]
    assert page.count("<svg") == 4 and not REMOTE.search(page)
    assert page.count('<pre class="row">') == 3 * ROWS_PER_STRATEGY  # ten per strategy, seeds in order
    assert "&lt;b&gt;fac row 0&lt;/b&gt;" in page and "<b>fac row 0</b>" not in page  # rows are escaped
    assert page.count("<tr><td>") == 6 and "synthesis=magpie seed=1" in page


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_chromium_renders_the_report_offline(tmp_path):
    sweep(tmp_path)
    report = write_report(tmp_path / "sweep", tmp_path / "sweep")
    offline = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
               "--window-size=1280,1800"]  # any request that left the page would fail
    dom = subprocess.run([*offline, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    assert dom.count("<svg") == 4 and dom.count('class="row"') == 3 * ROWS_PER_STRATEGY
    assert "dataframe leaderboard" in dom and not REMOTE.search(dom)
    shot = tmp_path / "report.png"
    subprocess.run([*offline, f"--screenshot={shot}", report.as_uri()], capture_output=True, timeout=120,
                   check=True)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one


def test_the_coverage_view_and_feature_cards_come_from_the_runs_artifacts(tiny_llama_dir, tmp_path):
    """Two real tiny chains (seed_only, fac) in one folder: the report reads their feature space and row sets'
    tables and shows, per strategy, how many missing features its rows activate, with a card per shown feature."""
    from fac_lightning.report import MISSING_SHOWN
    from fac_lightning.stages.experiment import run_experiment
    from tests.stages.test_experiment import chain_config

    for strategy in ("seed_only", "fac"):
        cfg = chain_config(tiny_llama_dir, tmp_path, f"synthesis={strategy}")
        cfg.paths.output_dir = str(tmp_path / "sweep" / strategy)
        run_experiment(cfg)
    page = write_report(tmp_path / "sweep", tmp_path / "sweep").read_text()
    counts = dict(re.findall(r"<tr><td>(\w+)</td><td>([\d.]+)</td><td>1</td></tr>", page))
    missing = int(re.search(r"<p class=\"note\">(\d+) relevant anchor features that the seed rows", page).group(1))
    assert set(counts) == {"seed_only", "fac"} and float(counts["seed_only"]) == 0  # the seed rows cover none
    assert 0 < float(counts["fac"]) <= missing
    assert page.count('class="card"') == min(missing, MISSING_SHOWN) and "Not available" not in page
    shades = [float(a) for a in re.findall(r'class="tok" style="background: rgba\(40, 150, 60, ([\d.]+)\)"', page)]
    assert shades and max(shades) == 1.0 and min(shades) < 1.0  # each span's tokens shaded by their activation
