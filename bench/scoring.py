"""Benchmark: scoring and allocation time by round size, and greedy against optimal.

Run: python bench/scoring.py [--demo]

Prints
1. timings (CPU time of this process, best of 3: steadier than wall time on a shared machine)
   of score_round, greedy and optimal allocation on generated rounds of increasing size up to
   20,000 listings / 4,000 reps / 100,000 bids, with time per bid relative to the smallest
   round (so growth reads as a ratio measured in the same run: ~1 is linear), the awards each
   method made and the greedy/optimal total-score ratio; then the time ratio for 10x the bids
   (10,000 -> 100,000) beside the target for optimal allocation (at most 12x);
2. the peak memory traced while allocating the largest round optimally;
3. greedy against optimal on 200 small rounds where the reps are near capacity;
4. with --demo, the same comparison on the demo database's scored round (needs the app).
Takes about two to three minutes on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bidhub.domain.allocation import allocate  # noqa: E402
from bidhub.domain.facts import BidFacts  # noqa: E402
from bidhub.domain.rules import RuleSet, parse_rules  # noqa: E402
from bidhub.domain.scoring import score_round  # noqa: E402

SIZES = [(100, 20, 500), (250, 50, 1_250), (500, 100, 2_500), (1_000, 200, 5_000),
         (2_000, 400, 10_000), (20_000, 4_000, 100_000)]
TENFOLD = (10_000, 100_000)  # bids: the pair whose time ratio the target is about
TENFOLD_TARGET = 12.0  # optimal allocation at 10x the bids takes at most 12x the time
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def generated_round(listings: int, reps: int, bids: int, seed: int) -> list[BidFacts]:
    """A round with one bid per (rep, listing) pair, reps of varied skill and holdings."""
    rng = random.Random(seed)
    held = {rep: rng.randint(25, 39) for rep in range(1, reps + 1)}
    skill = {rep: rng.random() for rep in held}
    tenure = {rep: rng.uniform(1, 96) for rep in held}
    incidents = {rep: rng.choice((0, 0, 0, 1, 2)) for rep in held}
    is_new = {rep: rng.random() < 0.05 for rep in held}
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < bids:
        pairs.add((rng.randint(1, reps), rng.randint(1, listings)))
    facts = []
    for bid_id, (rep, listing) in enumerate(sorted(pairs), start=1):
        def noisy(centre: float, spread: float = 0.1) -> float:
            return min(1.0, max(0.0, rng.gauss(centre, spread)))

        new = is_new[rep]
        facts.append(BidFacts(
            bid_id=bid_id, rep_id=rep, listing_id=listing,
            submitted_at=T0 + timedelta(seconds=rng.randint(0, 600_000)),
            metrics={"win_rate": None if new else noisy(skill[rep]),
                     "stage_conversion": None if new else noisy(skill[rep], 0.2),
                     "retention": None if new else noisy(0.85),
                     "capacity_headroom": float(max(0, 40 - held[rep])),
                     "accounts_held": float(held[rep]),
                     "tenure_months": tenure[rep],
                     "open_incidents": float(incidents[rep])},
            accounts_held=held[rep], tenure_months=tenure[rep],
            open_incidents=incidents[rep], rep_branch="BJ", listing_branch="BJ"))
    return facts


def best_of(runs: int, function, *args):
    times, result = [], None
    for _ in range(runs):
        start = time.process_time()
        result = function(*args)
        times.append(time.process_time() - start)
    return result, min(times)


def with_method(rules: RuleSet, method: str) -> RuleSet:
    return replace(rules, allocation=method)


def timings(rules: RuleSet) -> list[BidFacts]:
    greedy, optimal = with_method(rules, "greedy"), with_method(rules, "optimal")
    print("1. CPU time by round size (best of 3 runs), rules/default.toml")
    header = (f"{'listings':>8} {'reps':>5} {'bids':>6} | {'score s':>8} {'greedy s':>9} "
              f"{'optimal s':>10} | {'µs/bid score':>12} {'greedy':>7} {'optimal':>8} | "
              f"{'x score':>7} {'x greedy':>8} {'x optimal':>9} | {'awards g/o':>11} "
              f"{'total g/o':>9}")
    print(header)
    print("-" * len(header))
    base = None
    facts: list[BidFacts] = []
    seconds: dict[int, tuple[float, float, float]] = {}
    for listings, reps, bids in SIZES:
        facts = generated_round(listings, reps, bids, seed=bids)
        scores, score_s = best_of(3, score_round, greedy, facts)
        greedy_result, greedy_s = best_of(3, allocate, greedy, facts, scores, 1)
        optimal_result, optimal_s = best_of(3, allocate, optimal, facts, scores, 1)
        seconds[bids] = (score_s, greedy_s, optimal_s)
        per_bid = tuple(spent / bids * 1e6 for spent in seconds[bids])
        base = base or per_bid
        ratios = tuple(value / first for value, first in zip(per_bid, base, strict=True))
        total_ratio = greedy_result.total_score / optimal_result.total_score
        awards = f"{greedy_result.award_count}/{optimal_result.award_count}"
        print(f"{listings:>8} {reps:>5} {bids:>6} | {score_s:>8.3f} {greedy_s:>9.3f} "
              f"{optimal_s:>10.3f} | {per_bid[0]:>12.1f} {per_bid[1]:>7.1f} {per_bid[2]:>8.1f} | "
              f"{ratios[0]:>7.2f} {ratios[1]:>8.2f} {ratios[2]:>9.2f} | {awards:>11} "
              f"{total_ratio:>9.4f}")
    print("x = time per bid relative to the smallest round (1.00 = linear growth).")
    print("Awards g/o: listings awarded by greedy / optimal (the per-round cap of 3 x reps")
    print("bounds both); total g/o: greedy total score / optimal total score.")
    small, large = (seconds[bids] for bids in TENFOLD)
    score_x, greedy_x, optimal_x = (after / before for after, before in
                                    zip(large, small, strict=True))
    verdict = "met" if optimal_x <= TENFOLD_TARGET else "NOT met"
    print(f"10x the bids ({TENFOLD[0]:,} -> {TENFOLD[1]:,}): time x{score_x:.1f} scoring, "
          f"x{greedy_x:.1f} greedy, x{optimal_x:.1f} optimal (target for optimal: "
          f"<= x{TENFOLD_TARGET:.0f}: {verdict})")
    return facts


def memory(rules: RuleSet, facts: list[BidFacts]) -> None:
    optimal = with_method(rules, "optimal")
    scores = score_round(optimal, facts)
    tracemalloc.start()
    allocate(optimal, facts, scores, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n2. Peak memory traced while allocating the largest round optimally: "
          f"{peak / 2**20:.1f} MiB")


def tight_rounds(rules: RuleSet) -> None:
    greedy, optimal = with_method(rules, "greedy"), with_method(rules, "optimal")
    print("\n3. Greedy against optimal on 200 rounds of 30 listings, 12 reps, 120 bids, every")
    print("   rep holding 36-39 accounts so capacity binds")
    ratios, fewer = [], 0
    for seed in range(200):
        facts = [replace(fact, accounts_held=fact.accounts_held % 4 + 36)
                 for fact in generated_round(30, 12, 120, seed)]
        scores = score_round(greedy, facts)
        greedy_result = allocate(greedy, facts, scores, seed)
        optimal_result = allocate(optimal, facts, scores, seed)
        fewer += greedy_result.award_count < optimal_result.award_count
        if greedy_result.award_count == optimal_result.award_count:
            ratios.append(greedy_result.total_score / optimal_result.total_score
                          if optimal_result.total_score else 1.0)
    worse = sum(1 for ratio in ratios if ratio < 1 - 1e-9)
    print(f"   greedy awarded fewer listings in {fewer} of 200 rounds; with as many awards, "
          f"a lower total in {worse} of {len(ratios)}")
    if ratios:
        print(f"   (total ratio median {statistics.median(ratios):.4f}, "
              f"worst {min(ratios):.4f})")


def demo_round() -> None:
    import tempfile

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
            results = {method: allocate(with_method(rules, method), stored.bids, scores,
                                        round_.lottery_seed)
                       for method in ("greedy", "optimal")}
            session.close()
        engine_of(app).dispose()
    greedy, optimal = results["greedy"], results["optimal"]
    print(f"\n4. The demo's scored round {round_.title}: {len(stored.bids)} bids; awards "
          f"{greedy.award_count}/{optimal.award_count}, totals {greedy.total_score:.3f}/"
          f"{optimal.total_score:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", action="store_true",
                        help="also compare on the demo database's scored round")
    arguments = parser.parse_args()
    rules = parse_rules((ROOT / "rules" / "default.toml").read_text(encoding="utf-8"))
    started = time.perf_counter()
    largest = timings(rules)
    memory(rules, largest)
    tight_rounds(rules)
    if arguments.demo:
        demo_round()
    print(f"\nDone in {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
