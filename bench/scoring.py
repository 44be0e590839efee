"""Benchmark: scoring and allocation time by round size, and how often greedy trails optimal.

Run: python bench/scoring.py
Prints one table of timings (with per-bid time relative to the smallest round, so growth is
read off as a ratio in the same run) and one of greedy/optimal total-score ratios on generated
rounds and on the demo's scored round.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bidhub.domain.allocation import allocate  # noqa: E402
from bidhub.domain.facts import BidFacts  # noqa: E402
from bidhub.domain.rules import parse_rules  # noqa: E402
from bidhub.domain.scoring import score_round  # noqa: E402

SIZES = [(100, 20, 500), (250, 50, 1_250), (500, 100, 2_500), (1_000, 200, 5_000),
         (2_000, 400, 10_000)]
T0 = datetime(2026, 3, 2, tzinfo=UTC)
METRIC_NAMES = ("win_rate", "stage_conversion", "retention", "capacity_headroom",
                "tenure_months", "open_incidents")


def generated_round(listings: int, reps: int, bids: int, seed: int) -> list[BidFacts]:
    rng = random.Random(seed)
    held = {rep: rng.randint(25, 39) for rep in range(1, reps + 1)}
    skill = {rep: rng.random() for rep in held}
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < bids:
        pairs.add((rng.randint(1, reps), rng.randint(1, listings)))
    facts = []
    for bid_id, (rep, listing) in enumerate(sorted(pairs), start=1):
        win_rate = None if rng.random() < 0.05 else min(1.0, max(0.0, rng.gauss(skill[rep], 0.1)))
        facts.append(BidFacts(
            bid_id=bid_id, rep_id=rep, listing_id=listing,
            submitted_at=T0 + timedelta(seconds=rng.randint(0, 600_000)),
            metrics={"win_rate": win_rate, "stage_conversion": rng.random(),
                     "retention": rng.uniform(0.6, 1.0),
                     "capacity_headroom": float(max(0, 40 - held[rep])),
                     "tenure_months": rng.uniform(3, 96), "open_incidents": float(rng.randint(0, 2))},
            accounts_held=held[rep], tenure_months=rng.uniform(3, 96),
            open_incidents=rng.randint(0, 2), rep_branch="BJ", listing_branch="BJ"))
    return facts


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def best_of(runs: int, function, *args):
    times, result = [], None
    for _ in range(runs):
        result, seconds = timed(function, *args)
        times.append(seconds)
    return result, min(times)


def main() -> None:
    text = (ROOT / "rules" / "default.toml").read_text(encoding="utf-8")
    greedy = parse_rules(text.replace('method = "optimal"', 'method = "greedy"'))
    optimal = replace(greedy, allocation="optimal")

    print("Scoring and allocation time (best of 3), default rules")
    print(f"{'listings':>8} {'reps':>5} {'bids':>6} | {'score s':>8} {'greedy s':>9} "
          f"{'optimal s':>10} | {'score µs/bid':>12} {'ratio':>6} | {'greedy/optimal total':>20}")
    base_per_bid = None
    for listings, reps, bids in SIZES:
        facts = generated_round(listings, reps, bids, seed=bids)
        scores, score_s = best_of(3, score_round, greedy, facts)
        greedy_result, greedy_s = best_of(3, allocate, greedy, facts, scores, 1)
        optimal_result, optimal_s = best_of(3, allocate, optimal, facts, scores, 1)
        per_bid = score_s / bids * 1e6
        base_per_bid = base_per_bid or per_bid
        ratio = greedy_result.total_score / optimal_result.total_score
        print(f"{listings:>8} {reps:>5} {bids:>6} | {score_s:>8.3f} {greedy_s:>9.3f} "
              f"{optimal_s:>10.3f} | {per_bid:>12.1f} {per_bid / base_per_bid:>6.2f} | "
              f"{ratio:>20.4f}")

    print("\nGreedy against optimal on 200 generated rounds (30 listings, 12 reps, 120 bids,")
    print("reps near capacity so the constraints bind)")
    ratios = []
    for seed in range(200):
        facts = [replace(fact, accounts_held=fact.accounts_held % 4 + 36)
                 for fact in generated_round(30, 12, 120, seed)]
        scores = score_round(greedy, facts)
        greedy_total = allocate(greedy, facts, scores, seed).total_score
        optimal_total = allocate(optimal, facts, scores, seed).total_score
        ratios.append(greedy_total / optimal_total if optimal_total else 1.0)
    worse = sum(1 for ratio in ratios if ratio < 1 - 1e-9)
    print(f"  greedy below optimal in {worse} of {len(ratios)} rounds; "
          f"median ratio {statistics.median(ratios):.4f}, worst {min(ratios):.4f}")

    print("\nThe demo's scored round")
    demo_ratio()


def demo_ratio() -> None:
    from bidhub import create_app
    from bidhub.cli import init_database
    from bidhub.db import engine_of, get_session
    from bidhub.demo import build_demo
    from bidhub.models import Round, RoundStatus
    from bidhub.services.replays import load_scored_round
    from bidhub.services.rule_sets import parsed

    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATABASE_URL": f"sqlite:///{folder}/bench.sqlite3",
                          "SECRET_KEY": "bench"})
        with app.app_context():
            init_database(app)
            session = get_session()
            build_demo(session, datetime.now(UTC))
            round_ = session.query(Round).filter_by(status=RoundStatus.SCORED).first()
            stored = load_scored_round(session, round_.id)
            rules = parsed(round_.rule_set)
            scores = score_round(rules, stored.bids)
            totals = {method: allocate(replace(rules, allocation=method), stored.bids, scores,
                                       round_.lottery_seed).total_score
                      for method in ("greedy", "optimal")}
            session.close()
        engine_of(app).dispose()
    print(f"  {round_.title}: {len(stored.bids)} bids, greedy {totals['greedy']:.3f}, "
          f"optimal {totals['optimal']:.3f}, ratio {totals['greedy'] / totals['optimal']:.4f}")


if __name__ == "__main__":
    main()
