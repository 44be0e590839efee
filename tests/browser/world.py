"""A small department for the browser walk: an open round, a scored round, filings and history.

Built through the same services the app uses (rounds, bids, scoring, transfers, incidents), at
instants before the walk's frozen `now`, so each page has something real to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from bidhub.db import unit_of_work
from bidhub.models import (
    Account,
    Branch,
    Contact,
    FilingKind,
    MonthlyForecast,
    Notification,
    Opportunity,
    OpportunityStageChange,
    Role,
    User,
)
from bidhub.services.accountability import log_incident
from bidhub.services.adjudication import score_closed_round
from bidhub.services.bidding import submit_bid
from bidhub.services.filings import transfer_account
from bidhub.services.ownership import OwnerChange, change_owners
from bidhub.services.rounds import create_round, publish_round, release_account
from bidhub.services.users import new_session_token

PASSWORD = "browser walk 2026"
# The walk signs in a handful of times; a cheap hash keeps the build quick.
PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")

# Accounts of the rep who left, released into the rounds: (name, industry, ownership, value).
OPEN_ROUND_ACCOUNTS = (
    ("北京星河科技有限公司", "互联网", "private", 1_800_000),
    ("上海蓝海物流集团", "物流", "state_owned", 1_200_000),
    ("深圳华信电子股份有限公司", "制造业", "listed", 950_000),
    ("广州中欧医疗器械合资公司", "医疗", "joint_venture", 640_000),
    ("北京市朝阳区人力资源服务中心", "政府", "government", 300_000),
    # A name as long as registered names run: on a phone it wraps inside its card.
    ("中国西部国际供应链管理与数字化转型咨询服务集团股份有限公司", "咨询", "private", 520_000),
)
CLOSED_ROUND_ACCOUNTS = (
    ("天津远航航运有限公司", "物流", "state_owned", 2_100_000),
    ("杭州云帆软件有限公司", "互联网", "private", 870_000),
)
HELD_ACCOUNTS = ("成都锦江酒店管理有限公司", "南京紫金金融服务有限公司", "武汉长江汽车零部件有限公司",
                 "西安古城文化传媒有限公司", "苏州工业园区精密机械有限公司", "青岛海湾食品有限公司")


@dataclass(frozen=True)
class World:
    rep: str  # walks the rep's pages and bids
    rival: str
    switcher: str  # switches to English (kept apart so the other walks stay in Chinese)
    manager: str
    admin: str
    open_round_id: int
    closed_round_id: int
    scored_listing_id: int
    listing_to_bid_id: int
    filter_ownership: str  # the ownership type of exactly one listing of the open round


def build_world(session: Session, now: datetime) -> World:
    branch_bj, branch_sh = add_branches(session)
    staff = add_users(session, now, branch_bj, branch_sh)
    rep, rival, switcher, leaver = (staff[name] for name in ("wangfang", "liqiang", "zhangwei",
                                                                 "chenjing"))
    manager = staff["zhoumin"]
    loaded_at = now - timedelta(days=400)
    held = [add_account(session, name, "服务业", "private", 500_000 + 40_000 * n, branch_bj, n,
                        loaded_at)
            for n, name in enumerate(HELD_ACCOUNTS)]
    released = [add_account(session, name, industry, ownership, value,
                            branch_sh if n % 2 else branch_bj, 100 + n, loaded_at)
                for n, (name, industry, ownership, value)
                in enumerate(OPEN_ROUND_ACCOUNTS + CLOSED_ROUND_ACCOUNTS)]
    # Accountability applies only to an account that placed no order with us, and every held
    # account above has a won deal (add_history): the incident is about this one.
    watched = add_account(session, "厦门鹭岛物流有限公司", "物流", "private", 300_000, branch_bj, 50,
                          loaded_at)
    # The first CRM load, filed as every owner change is.
    owners = [(account, rep if n < 3 else rival if n < 5 else switcher)
              for n, account in enumerate(held)] + [(account, leaver) for account in released]
    owners.append((watched, rep))
    with unit_of_work(session):
        change_owners(session, [OwnerChange(account.id, owner.id, filing={
            "kind": FilingKind.CRM_IMPORT, "reason": "CRM import", "decided_by_id": manager.id})
            for account, owner in owners], limit=None, now=loaded_at)
    transfer_account(session, manager, account_id=held[5].id, to_rep_id=rival.id,
                     reason="张伟的客户数已满，划转给李强。",
                     review_text="客户需求变化，原销售无法继续跟进，经部门讨论后划转。",
                     now=now - timedelta(days=60))
    add_history(session, now, rep, rival, held)
    log_incident(session, manager, account_id=watched.id, competitor_site="51job.com",
                 ad_type="banner", evidence_url="https://www.51job.com/",
                 seen_at=now - timedelta(days=3), now=now - timedelta(days=2))

    closed_id, scored_listing_id = add_closed_round(
        session, now, manager, [rep, rival], released[len(OPEN_ROUND_ACCOUNTS):])
    open_id, listing_ids = add_open_round(session, now, manager, released[:len(OPEN_ROUND_ACCOUNTS)])
    bid(session, rival, listing_ids[0], now - timedelta(hours=20))
    return World(rep=rep.username, rival=rival.username, switcher=switcher.username,
                 manager=manager.username, admin=staff["admin"].username,
                 open_round_id=open_id, closed_round_id=closed_id,
                 scored_listing_id=scored_listing_id, listing_to_bid_id=listing_ids[1],
                 filter_ownership="state_owned")


def add_branches(session: Session) -> tuple[Branch, Branch]:
    with unit_of_work(session):
        branches = (Branch(code="BJ", name="Beijing", name_zh="北京"),
                    Branch(code="SH", name="Shanghai", name_zh="上海"))
        session.add_all(branches)
        session.flush()
    return branches


def add_users(session: Session, now: datetime, branch_bj: Branch, branch_sh: Branch
              ) -> dict[str, User]:
    people = (("wangfang", "王芳", Role.REP, branch_bj), ("liqiang", "李强", Role.REP, branch_sh),
              ("zhangwei", "张伟", Role.REP, branch_bj), ("chenjing", "陈静", Role.REP, branch_bj),
              ("zhoumin", "周敏", Role.KA_MANAGER, None), ("admin", "系统管理员", Role.ADMIN, None))
    users = {}
    with unit_of_work(session):
        for n, (username, name, role, branch) in enumerate(people):
            users[username] = User(
                username=username, display_name=name, password_hash=PASSWORD_HASH, role=role,
                branch_id=branch.id if branch else None, is_active=True, status="active",
                hired_on=(now - timedelta(days=700 + 150 * n)).date(),
                session_token=new_session_token(), failed_login_count=0,
                created_at=now - timedelta(days=500))
            session.add(users[username])
        session.flush()
    return users


def add_account(session: Session, name: str, industry: str, ownership: str, value: int,
                branch: Branch, n: int, at: datetime) -> Account:
    with unit_of_work(session):
        account = Account(external_id=f"KA-{n:05d}", name=name, industry=industry,
                          ownership_type=ownership, branch_id=branch.id, annual_value_yuan=value,
                          created_at=at)
        session.add(account)
        session.flush()
        session.add_all([
            Contact(account_id=account.id, role="decision_maker", name="赵总", title="总经理"),
            Contact(account_id=account.id, role="purchaser", name="孙经理", title="人力资源部"),
        ])
    return account


def add_history(session: Session, now: datetime, rep: User, rival: User,
                held: list[Account]) -> None:
    """Funnel, forecasts and closed deals, so both track records have figures and charts."""
    stages = ("potential", "intent", "proposal", "negotiation", "won")
    with unit_of_work(session):
        for person, wins, losses, open_ones in ((rep, 6, 2, 4), (rival, 3, 4, 2)):
            for n in range(wins + losses + open_ones):
                opened = now - timedelta(days=300 - 20 * n)
                if n < wins:
                    path, closed = stages, opened + timedelta(days=50)
                elif n < wins + losses:
                    path, closed = (*stages[:2], "lost"), opened + timedelta(days=40)
                else:
                    path, closed = stages[:1 + n % 4], None
                opportunity = Opportunity(account_id=held[n % len(held)].id, rep_id=person.id,
                                          amount_yuan=80_000 + 10_000 * n, stage=path[-1],
                                          opened_at=opened, closed_at=closed)
                session.add(opportunity)
                session.flush()
                session.add_all([
                    OpportunityStageChange(opportunity_id=opportunity.id, stage=stage,
                                           changed_at=opened + timedelta(days=10 * step))
                    for step, stage in enumerate(path)])
            for months_ago in range(1, 7):
                month = first_of_month(now.date(), months_ago)
                session.add(MonthlyForecast(rep_id=person.id, month=month,
                                            forecast_yuan=300_000 + 20_000 * months_ago,
                                            actual_yuan=280_000 + 30_000 * (months_ago % 3)))


def first_of_month(day: date, months_back: int) -> date:
    index = day.year * 12 + day.month - 1 - months_back
    return date(index // 12, index % 12 + 1, 1)


REVIEW = "原销售已离职，客户需要新的负责人继续跟进。"


def release_all(session: Session, manager: User, round_id: int, accounts: list[Account],
                at: datetime) -> list[int]:
    return [release_account(session, manager, round_id, account_id=account.id,
                            reason="neglected", note="", review_text=REVIEW,
                            now=at + timedelta(minutes=n)).id
            for n, account in enumerate(accounts)]


def add_closed_round(session: Session, now: datetime, manager: User, bidders: list[User],
                     accounts: list[Account]) -> tuple[int, int]:
    """A round whose deadline passed yesterday, scored and waiting for the manager's decision."""
    created = now - timedelta(days=12)
    round_ = create_round(session, manager, title="二月客户资源竞标", branch_id=None,
                          opens_at=created + timedelta(hours=3),
                          closes_at=now - timedelta(days=1), now=created)
    listing_ids = release_all(session, manager, round_.id, accounts, created)
    publish_round(session, manager, round_.id, expected_version=round_.version,
                  now=created + timedelta(hours=2))
    for n, rep in enumerate(bidders):
        for listing_id in listing_ids:
            bid(session, rep, listing_id, created + timedelta(days=2, hours=n))
    score_closed_round(session, round_.id, now - timedelta(days=1) + timedelta(minutes=5))
    return round_.id, listing_ids[0]


def add_open_round(session: Session, now: datetime, manager: User,
                   accounts: list[Account]) -> tuple[int, list[int]]:
    created = now - timedelta(days=2)
    round_ = create_round(session, manager, title="三月客户资源竞标", branch_id=None,
                          opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=6),
                          now=created)
    listing_ids = release_all(session, manager, round_.id, accounts, created)
    publish_round(session, manager, round_.id, expected_version=round_.version,
                  now=created + timedelta(hours=2))
    return round_.id, listing_ids


def bid(session: Session, rep: User, listing_id: int, at: datetime) -> None:
    submit_bid(session, rep, listing_id,
               account_plan="先拜访决策人了解招聘需求，三个月内推出年度合作方案，提升续约率。",
               committed_revenue_yuan=600_000,
               visit_plan="第一周拜访总经理，第二周与人力资源部确定方案。",
               submission_key=None, now=at)


def by_username(session: Session, username: str) -> User:
    return session.scalars(select(User).where(User.username == username)).one()


def add_notifications(session: Session, rep: User, at: datetime, kind: str, msgid: str,
                      params: dict, link_endpoint: str, event_keys: list[str]) -> list[int]:
    """Notifications for `rep` written as notify() writes them, one per event key; their ids.
    Written directly: the event that would send one (an incident, a release) would also count
    in the other walks' rounds."""
    with unit_of_work(session):
        notices = [Notification(recipient_id=rep.id, kind=kind, event_key=key, msgid=msgid,
                                params=params, link_endpoint=link_endpoint, link_args={},
                                created_at=at) for key in event_keys]
        session.add_all(notices)
        session.flush()
        return [notice.id for notice in notices]


def add_round_past_its_deadline(session: Session, now: datetime, manager: User, holder: User,
                                title: str, accounts: tuple[tuple[str, str, int], ...],
                                first_number: int) -> tuple[int, list[int], datetime]:
    """A round made ten days ago of new accounts (name, industry, annual value) that `holder`
    held, released and published, its deadline twelve hours ago, not yet scored; its id, its
    listings' ids and when bids may be placed (two days after it was made)."""
    branch = session.scalars(select(Branch).order_by(Branch.id)).first()
    created = now - timedelta(days=10)
    added = [add_account(session, name, industry, "private", value, branch, first_number + n,
                         created - timedelta(days=200))
             for n, (name, industry, value) in enumerate(accounts)]
    with unit_of_work(session):
        change_owners(session, [OwnerChange(account.id, holder.id, filing={
            "kind": FilingKind.CRM_IMPORT, "reason": "CRM import",
            "decided_by_id": manager.id}) for account in added],
            limit=None, now=created - timedelta(days=200))
    round_ = create_round(session, manager, title=title, branch_id=None,
                          opens_at=created + timedelta(hours=3),
                          closes_at=now - timedelta(hours=12), now=created)
    listing_ids = release_all(session, manager, round_.id, added, created)
    publish_round(session, manager, round_.id, expected_version=round_.version,
                  now=created + timedelta(hours=2))
    return round_.id, listing_ids, created + timedelta(days=2)
