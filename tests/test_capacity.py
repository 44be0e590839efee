"""Capacity (30-40 accounts per rep) at bid time, in the allocation, and for transfers."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bidhub.domain.errors import CapacityExceeded, NotEligible
from bidhub.models import Bid, Filing
from bidhub.services.filings import transfer_account
from tests.conftest import reload


def test_a_rep_at_the_maximum_cannot_bid(session, make_rep, give_accounts, make_account,
                                         make_round, make_bid):
    rep = make_rep()
    give_accounts(rep, 40)
    round_ = make_round(accounts=[make_account()])
    with pytest.raises(NotEligible, match="holds 40 accounts"):
        make_bid(rep, round_.listings[0])
    assert session.scalar(select(func.count()).select_from(Bid)) == 0


def test_a_rep_one_below_the_maximum_can_bid(make_rep, give_accounts, make_account, make_round,
                                             make_bid):
    rep = make_rep()
    give_accounts(rep, 39)
    round_ = make_round(accounts=[make_account()])
    assert make_bid(rep, round_.listings[0]).id


def test_a_direct_transfer_never_pushes_a_rep_past_the_maximum(session, make_rep, make_manager,
                                                               give_accounts, make_account, clock):
    full, owner = make_rep(), make_rep()
    give_accounts(full, 40)
    account = make_account(owner=owner)
    filings_before = session.scalar(select(func.count()).select_from(Filing))
    with pytest.raises(CapacityExceeded, match="exceed the maximum of 40"):
        transfer_account(session, make_manager(), account_id=account.id, to_rep_id=full.id,
                         reason="Rep left the company.", review_text="Left in March, see HR.",
                         now=clock())
    reload(session)
    assert session.get(type(account), account.id).owner_id == owner.id
    assert session.scalar(select(func.count()).select_from(Filing)) == filings_before


def test_a_direct_transfer_within_capacity_is_filed(session, make_rep, make_manager, make_account,
                                                    clock):
    owner, receiver, manager = make_rep(), make_rep(), make_manager()
    account = make_account(owner=owner)
    filing = transfer_account(session, manager, account_id=account.id, to_rep_id=receiver.id,
                              reason="Owner left the company.", review_text="Left; handover done.",
                              now=clock())
    assert (filing.seq, filing.from_rep_id, filing.to_rep_id, filing.decided_by_id) == (
        2, owner.id, receiver.id, manager.id)  # filing 1 gave the account its first owner
    assert filing.kind == "direct_transfer" and filing.round_id is None
    assert session.get(type(account), account.id).owner_id == receiver.id
