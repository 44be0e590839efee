"""The ledger: hashes cover every filed field, the chain check finds the first broken link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bidhub.domain.ledger import (
    GENESIS_HASH,
    check_against_checkpoints,
    check_history,
    filing_hash,
    replay_owners,
    sign_checkpoint,
    verify_chain,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def chain(transfers: list[tuple[int, int]]) -> list[dict]:
    filings, prev = [], GENESIS_HASH
    for seq, (account_id, to_rep_id) in enumerate(transfers, start=1):
        filing = {"seq": seq, "kind": "direct_transfer", "account_id": account_id,
                  "from_rep_id": None, "to_rep_id": to_rep_id, "round_id": None,
                  "listing_id": None, "branch_id": 1, "reason": "moved", "winner_score": None,
                  "runner_up_score": None, "rule_set_sha256": None, "override_reason": "",
                  "decided_by_id": 9, "decided_at": T0 + timedelta(minutes=seq),
                  "prev_hash": prev}
        filing["hash"] = filing_hash(filing)
        prev = filing["hash"]
        filings.append(filing)
    return filings


def test_an_intact_chain_verifies():
    assert verify_chain(chain([(1, 2), (2, 3), (1, 3)])) is None


def test_an_edit_is_found_at_its_sequence_number():
    filings = chain([(1, 2), (2, 3), (1, 3)])
    filings[1]["reason"] = "edited"
    broken = verify_chain(filings)
    assert broken.seq == 2 and "hash" in broken.problem


def test_a_deletion_is_found_where_the_gap_is():
    filings = chain([(1, 2), (2, 3), (1, 3)])
    del filings[1]
    assert verify_chain(filings).seq == 2


def test_a_reordering_is_found():
    filings = chain([(1, 2), (2, 3), (1, 3)])
    filings[1], filings[2] = filings[2], filings[1]
    assert verify_chain(filings).seq == 2


def test_scores_hash_the_same_after_a_database_round_trip():
    filing = chain([(1, 2)])[0]
    filing.update(winner_score=0.8123456789, runner_up_score=0.5)
    assert filing_hash(filing) == filing_hash({**filing, "winner_score": 0.812346})


# The hash of a filing from before appeals existed, computed by the code of that time; it
# must never change, or every register filed so far would stop verifying.
PRE_APPEALS_HASH = "94725bf7d55b49760a7c81ceaab1a079775b9b32501ed6149f5cfcc8cd65f1fa"
APPEALS = [{"appellant_id": 7, "ground": "My plan was not read.", "status": "rejected",
            "answer": "It was read; the score decided.", "answered_by_id": 9}]


def test_a_filing_without_appeals_keeps_the_hash_it_was_filed_with():
    filing = chain([(1, 2)])[0]
    assert filing_hash(filing) == filing_hash({**filing, "appeals": None}) == PRE_APPEALS_HASH


def test_the_hash_covers_the_appeals_and_their_answers_when_there_are_some():
    filing = {**chain([(1, 2)])[0], "appeals": APPEALS}
    filing["hash"] = filing_hash(filing)
    assert filing["hash"] != PRE_APPEALS_HASH
    assert verify_chain([filing]) is None
    edited = {**filing, "appeals": [{**APPEALS[0], "answer": "Upheld after all."}]}
    broken = verify_chain([edited])
    assert broken.seq == 1 and "hash" in broken.problem
    assert verify_chain([{**filing, "appeals": None}]).seq == 1  # erasing them is found too


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 4)), max_size=40),
       st.integers(0, 39))
def test_any_single_field_edit_breaks_the_chain_at_that_filing(transfers, index):
    filings = chain(transfers)
    if not filings:
        return
    index %= len(filings)
    filings[index]["to_rep_id"] += 100
    assert verify_chain(filings).seq == index + 1


@given(st.dictionaries(st.integers(1, 6), st.one_of(st.none(), st.integers(1, 4))),
       st.lists(st.tuples(st.integers(1, 6), st.integers(1, 4)), max_size=40))
def test_replaying_filings_gives_the_final_owners(initial, transfers):
    owners = dict(initial)
    for account_id, to_rep_id in transfers:
        owners[account_id] = to_rep_id
    assert replay_owners(initial, chain(transfers)) == owners


def history(moves: list[tuple[int, int]]) -> list[dict]:
    """Filings of these moves (account, new rep), each from the owner the moves before it
    left (nobody at first); a move to the rep who holds the account already is not filed."""
    held: dict[int, int] = {}
    filings = []
    for account_id, to_rep_id in moves:
        if held.get(account_id) == to_rep_id:
            continue
        filings.append({"seq": len(filings) + 1, "account_id": account_id,
                        "from_rep_id": held.get(account_id), "to_rep_id": to_rep_id})
        held[account_id] = to_rep_id
    return filings


MOVES = st.lists(st.tuples(st.integers(1, 5), st.integers(1, 4)), max_size=40)


@given(MOVES)
def test_filings_that_follow_each_other_have_a_consistent_history(moves):
    assert check_history(history(moves)) == []


@given(MOVES, st.integers(0, 39), st.sampled_from(["from", "to"]))
def test_a_filing_that_does_not_follow_from_the_ones_before_is_named(moves, index, side):
    """One filing names another previous owner (or nobody), or gives the account to the rep
    the filings before it leave it with: that filing is the first problem found."""
    filings = history(moves)
    if not filings:
        return
    index %= len(filings)
    filing = filings[index]
    if side == "from":
        filing["from_rep_id"] = None if filing["from_rep_id"] else 99
    else:
        filing["to_rep_id"] = filing["from_rep_id"]
        if filing["to_rep_id"] is None:
            return  # nobody receives nothing: not a filing bidhub can write
    problems = check_history(filings)
    assert problems and problems[0].seq == filing["seq"]


def test_filings_without_a_checkpoint_are_named_run_by_run():
    chain_ = {seq: f"{seq:064x}" for seq in range(1, 11)}
    checkpoints = [sign_checkpoint(b"key", seq, chain_[seq]) for seq in (1, 2, 3, 6, 7)]
    first, second = check_against_checkpoints(b"key", chain_, checkpoints)
    assert (first.seq, second.seq) == (4, 8)
    assert first.kind == second.kind == "checkpoint"
    assert str(first.problem).startswith("filings 4 to 5 have no checkpoint outside the "
                                         "database")
    assert str(second.problem).startswith("filings 8 to 10 have no checkpoint")
    assert first.names_its_filing and second.names_its_filing
    assert check_against_checkpoints(b"key", chain_, checkpoints + [
        sign_checkpoint(b"key", seq, chain_[seq]) for seq in (4, 5, 8, 9, 10)]) == []
    [problem] = check_against_checkpoints(b"key", chain_, [])
    assert problem.seq == 1 and "filings 1 to 10 have no checkpoint" in str(problem.problem)


def test_runs_past_the_fifth_are_named_together_by_the_filings_they_lie_between():
    chain_ = {seq: f"{seq:064x}" for seq in range(1, 31)}
    anchored = [seq for seq in chain_ if seq % 4]  # 4, 8, ..., 28: seven runs of one filing
    problems = check_against_checkpoints(
        b"key", chain_, [sign_checkpoint(b"key", seq, chain_[seq]) for seq in anchored])
    assert [problem.seq for problem in problems] == [4, 8, 12, 16, 20, 24]
    assert [str(problem.problem) for problem in problems[:5]] == [
        f"filing {seq} has no checkpoint outside the database: it was added behind the app's "
        "back, or its checkpoint could not be written (see the log)" for seq in (4, 8, 12, 16, 20)]
    assert str(problems[5].problem) == ("between filings 24 and 28, further filings have no "
                                        "checkpoint outside the database either")
    assert all(problem.names_its_filing for problem in problems)
