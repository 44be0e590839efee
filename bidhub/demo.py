"""The demo world: branches, reps, accounts with history, and rounds, built reproducibly.

Everything is drawn from one seeded random generator (`random.Random(2026)`) and planned as
offsets before `now`, so two builds give the same people, accounts, owners and histories; only
the timestamps move with `now`. Branches and staff are created directly; reps, accounts (with
owners, sponsors and contacts), opportunities (with stage history), forecasts and incidents are
rendered as the CSV files a CRM exports (UTF-8 with BOM or GB18030, Chinese or English headers)
and go through the CRM import, as the admin, so the demo exercises it; a refused row stops the
build. The rounds then go through the real services (create, release, publish, bid, score) with
injected times, so they look exactly like rounds run through the web.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, func, insert, inspect, literal, select, table, update
from sqlalchemy.orm import Session

from bidhub.config import Defaults
from bidhub.db import refresh_planner_statistics, unit_of_work
from bidhub.domain.imports import ImportKind
from bidhub.models import (
    Account,
    AccountReview,
    AuditEvent,
    DecisionKind,
    FilingKind,
    InstanceMarker,
    LossReviewStatus,
    ReleaseReason,
    RepStatus,
    Role,
    User,
)
from bidhub.services.filings import DEFAULT_CAPACITY_MAX
from bidhub.services.track_records import refresh_track_records

DEMO_PASSWORD = "bidhub-demo"  # noqa: S105 - the published password of the demo users
SEED = 2026
ACCOUNT_COUNT = 2000
MINUTES_PER_DAY = 24 * 60

BRANCHES: tuple[tuple[str, str, int], ...] = (  # code, name, reps
    ("BJ", "Beijing", 24),
    ("SH", "Shanghai", 20),
    ("GZ", "Guangzhou", 16),
)
BRANCH_NAMES_ZH = {"BJ": "北京", "SH": "上海", "GZ": "广州"}
STAFF: tuple[tuple[str, str, str], ...] = (  # username, display name, role
    ("admin", "陈立", Role.ADMIN),
    ("manager", "周建国", Role.KA_MANAGER),
    ("manager2", "吴晓梅", Role.KA_MANAGER),
)
# The executive sponsors (老板负责人) as people: the CRM's titles resolve to them on import.
EXECUTIVES: tuple[tuple[str, str, str, str | None], ...] = (  # username, name, title, branch
    ("president", "刘振华", "president", None),
    ("kavp", "孙丽华", "ka_vice_president", None),
    ("gm_bj", "赵国强", "branch_general_manager", "BJ"),
    ("gm_sh", "钱文博", "branch_general_manager", "SH"),
    ("gm_gz", "黄志明", "branch_general_manager", "GZ"),
)
# The reps the README names, with what makes each of them worth logging in as.
NAMED_REPS: dict[str, dict] = {
    "rep01": {"name": "王伟", "branch": "BJ", "holdings": 34, "skill": 0.74, "hired": 1290},
    "rep02": {"name": "李娜", "branch": "BJ", "holdings": 40, "skill": 0.8, "hired": 1830},
    "rep03": {"name": "张静", "branch": "SH", "holdings": 33, "skill": 0.66, "hired": 760},
}
ON_LEAVE = ("rep17", "rep44")
LOGIN_ORDER = ("admin", "manager", "manager2", "rep01", "rep02", "rep03", "president", "kavp",
               "gm_bj")

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
            "于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹")
GIVEN_NAMES = (
    "伟", "娜", "芳", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "霞", "平", "刚", "桂英", "浩", "宇", "欣怡", "子涵", "晨", "婷", "雪", "鹏",
    "辉", "晓东", "建华", "志强", "海燕", "文博", "思远", "嘉怡", "俊杰", "雨桐", "梓萱", "一鸣",
    "天佑", "佳琪", "诗涵", "振宇", "博文", "丹", "颖", "凯", "琳", "倩", "昊天", "慧敏", "国庆",
    "红梅", "立新", "建军", "晓燕", "文静", "佳慧", "子轩", "浩然", "梦琪", "鑫", "斌", "宁", "晶",
)

# Industry as shown to users, with its weight and the words company names use for it.
INDUSTRIES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("互联网", 18, ("网络科技", "信息技术", "数字科技", "软件", "云计算")),
    ("金融", 11, ("投资", "资产管理", "金融服务", "融资租赁", "保险经纪")),
    ("制造业", 16, ("精密制造", "机械", "电子", "新材料", "智能装备")),
    ("房地产", 7, ("置业", "地产", "物业服务", "建设发展")),
    ("医药", 9, ("医药", "生物科技", "医疗器械", "健康科技")),
    ("教育", 6, ("教育科技", "文化传播", "职业培训")),
    ("零售", 10, ("商贸", "连锁", "百货", "电子商务")),
    ("物流", 8, ("物流", "供应链管理", "速运", "国际货运代理")),
    ("能源", 5, ("能源", "新能源", "电力工程", "环保科技")),
    ("汽车", 7, ("汽车", "汽车零部件", "汽车销售服务", "新能源汽车")),
)
GOVERNMENT_INDUSTRY = "公共服务"
INDUSTRY_EN = {"互联网": "internet", "金融": "finance", "制造业": "manufacturing",
               "房地产": "real-estate", "医药": "pharma", "教育": "education", "零售": "retail",
               "物流": "logistics", "能源": "energy", "汽车": "automotive"}
OWNERSHIP: tuple[tuple[str, int], ...] = (
    ("private", 54), ("listed", 15), ("state_owned", 14), ("joint_venture", 12),
    ("government", 5),
)
CITIES: dict[str, tuple[tuple[str, int], ...]] = {
    "BJ": (("北京", 8), ("天津", 2)),
    "SH": (("上海", 7), ("苏州", 2), ("杭州", 2)),
    "GZ": (("广州", 6), ("深圳", 4), ("佛山", 1), ("东莞", 1)),
}
DISTRICTS: dict[str, tuple[str, ...]] = {
    "北京": ("海淀区", "朝阳区", "东城区", "西城区", "丰台区", "大兴区"),
    "天津": ("和平区", "滨海新区", "南开区"),
    "上海": ("浦东新区", "徐汇区", "静安区", "闵行区", "杨浦区", "长宁区"),
    "苏州": ("工业园区", "姑苏区", "吴中区"),
    "杭州": ("西湖区", "滨江区", "余杭区"),
    "广州": ("天河区", "越秀区", "海珠区", "黄埔区", "番禺区"),
    "深圳": ("南山区", "福田区", "宝安区", "龙岗区"),
    "佛山": ("禅城区", "南海区"),
    "东莞": ("松山湖", "南城街道"),
}
AGENCIES = ("人力资源和社会保障局", "人才服务中心", "政务服务中心", "教育局", "卫生健康委员会",
            "商务局", "科学技术委员会", "交通运输局", "市场监督管理局", "住房和城乡建设委员会")
BRAND_FIRST = "华中博鼎瑞天汇恒星金盛泰宏嘉远创新联鸿立安信德永宇智明达诚海云浩正东通元优众美锦"
BRAND_SECOND = "信远盛合达通科瑞泰昌源辰峰邦维拓睿驰航宸润晟域策迅坤澜启越铭"
FOREIGN_BRANDS = ("艾默森", "福斯特", "霍尔曼", "康宁顿", "博德曼", "安特维", "罗兰德", "卡尔森",
                  "维克斯", "施泰因", "雅各布", "奥莱克", "贝尔斯", "克莱恩", "斯泰尔", "诺德兰")

CONTACT_TITLES: dict[str, tuple[str, ...]] = {
    "decision_maker": ("总经理", "人力资源总监", "副总裁", "董事长", "人事行政总监", "HR VP"),
    "user": ("招聘经理", "HRBP", "部门经理", "招聘主管", "培训经理"),
    "purchaser": ("采购经理", "行政采购主管", "采购专员", "供应商管理经理"),
    "contact": ("招聘专员", "HR专员", "行政助理", "人事专员"),
}
GOVERNMENT_TITLES: dict[str, tuple[str, ...]] = {
    "decision_maker": ("主任", "副局长", "处长"),
    "user": ("科长", "副处长"),
    "purchaser": ("采购办主任", "财务科科长"),
    "contact": ("科员", "办公室干事"),
}
PHONE_PREFIXES = ("138", "139", "137", "136", "135", "150", "158", "186", "188", "189", "177")
SPONSORS: tuple[tuple[str, int], ...] = (
    ("president", 1), ("ka_vice_president", 2), ("branch_general_manager", 3))

STAGES_AFTER_POTENTIAL = ("intent", "proposal", "negotiation", "won")
COMPETITOR_SITES = ("51job.com", "zhaopin.com", "liepin.com")
AD_TYPES = ("logo", "banner", "text")
PAGE_AREAS = ("home_page", "special_section")  # the parts of a site the handbook watches
EXPLANATIONS = (
    "客户总部统一采购，分公司自行在竞品网站投放少量职位，已约客户HR沟通年度整合方案。",
    "该客户为校招季临时投放，已与客户确认下季度集中在我方平台发布。",
    "竞品给出大幅折扣，客户短期试用；已提交竞品对比材料并安排回访。",
    "客户新换HR负责人，之前未交接合作关系；已重新建立联系并拜访。",
    "客户区域办公室直接购买了竞品的Banner广告，我们正把其投放预算并入年度合同统一管理。",
)
TRANSFER_REASONS = (
    "原销售调岗至渠道部，客户按区域重新分配。",
    "客户业务重心迁至新区，按就近服务原则调整跟进销售。",
    "销售名下客户过多，经KA销售管理部批准划转。",
    "按客户总部所在区域，调整给负责其总部的KA销售统一跟进。",
)
TRANSFER_REVIEWS = (
    "近半年拜访不足两次，续约推进缓慢，客户反馈响应不及时。",
    "客户年度需求增长较快，原销售精力不足以支持，交接时已完成客户档案更新。",
    "原销售已移交全部联系人和在谈方案，并已告知客户。",
)
RELEASE_REVIEWS: dict[str, tuple[str, ...]] = {
    ReleaseReason.OVER_CAPACITY: (
        "{rep}名下客户已超过40家，无法保证精耕细作，{account}近两个季度拜访频次明显下降，释放竞标。",
        "{rep}名下客户超过40家，{account}半年内仅拜访一次，需要有余力的KA销售接手。",
    ),
    ReleaseReason.NEGLECTED: (
        "{account}近12个月没有任何商机推进，也没有拜访记录，{rep}未能说明跟进计划，按规定释放。",
        "{account}十二个月内没有商机和拜访记录，{rep}也没有恢复合作的计划，释放竞标。",
    ),
    ReleaseReason.ACCOUNTABILITY: (
        "{account}持续在竞品网站投放招聘广告，{rep}的问责说明未被采纳，按问责制度释放竞标。",
        "{account}两次通报后仍在竞品网站投放广告，{rep}的说明未被采纳。",
    ),
    ReleaseReason.EXECUTIVE_DECISION: (
        "经KA销售管理部与分公司总经理讨论，{account}需要具备行业经验的销售重新开发，由{rep}释放。",
    ),
    ReleaseReason.OTHER: (
        "{rep}转岗负责渠道客户，{account}需要新的KA销售接手，交接材料已整理完毕。",
    ),
}
RELEASE_NOTES = {
    ReleaseReason.OTHER: "销售转岗",
    ReleaseReason.REP_LEFT: "原销售已离职，客户暂无人跟进",
}
PLANS_ZH = (
    "首月完成对{contact}的拜访，梳理{account}全年招聘需求；以年度招聘套餐切入，结合我们在{industry}"
    "行业的成功案例，季度复盘投放效果，争取全年合作额达到{revenue}万元。",
    "{account}今年扩张明显，计划先以校园招聘专场打开合作，再推进社招年度框架协议；每月与HR负责人"
    "对齐职位进展，目标合作额{revenue}万元。",
    "我在{industry}行业已服务多家同类客户，计划为{account}定制雇主品牌方案，配合首页Banner与职位"
    "推广，三个月内完成首单，全年目标{revenue}万元。",
    "先修复客户关系：与{contact}面谈了解此前合作中的问题，提供一个月免费试用职位发布，之后签订年度"
    "合同，预计全年{revenue}万元。",
)
PLANS_EN = (
    "Meet {contact} in the first two weeks, map {account}'s hiring plan for the year and offer an "
    "annual package built on our {industry_en} references; target {yuan} yuan this year.",
    "Start with a campus-recruiting event to rebuild trust, then move {account} to an annual "
    "framework contract with quarterly reviews; committed {yuan} yuan.",
)
VISITS_ZH = (
    "第1周拜访决策人与HR负责人；第3周提交年度招聘方案；第6周组织雇主品牌沙龙；第10周复盘首批职位效果。",
    "第2周上门拜访并完成客户档案更新；第4周与采购人确认报价；第8周签约；之后每月一次例行拜访。",
    "每两周一次电话沟通，每月一次上门拜访；首月内完成决策人、使用人、采购人三方会面。",
)
VISITS_EN = (
    "Week 1: visit the decision maker and the HR lead. Week 4: proposal. Week 8: contract. "
    "Then a monthly visit.",
    "Two visits in the first month (HR and purchasing), a quarterly business review after.",
)


# --- the plan: pure data, drawn from the seeded generator, times as minutes before now ------


@dataclass
class PlannedRep:
    username: str
    display_name: str
    branch: str
    hired_days_ago: int
    status: str
    skill: float
    holdings: int


@dataclass
class PlannedAccount:
    external_id: str
    name: str
    industry: str
    ownership_type: str
    branch: str
    annual_value_yuan: int
    owner: str | None
    executive_sponsor: str | None
    created_days_ago: int
    contacts: list[tuple[str, str, str, str]] = field(default_factory=list)


@dataclass
class PlannedOpportunity:
    external_id: str
    account: str
    rep: str
    amount_yuan: int
    stages: list[tuple[str, int]]  # (stage, minutes before now), oldest first


@dataclass
class PlannedIncident:
    account: str
    rep: str
    competitor_site: str
    ad_type: str
    seen_minutes_ago: int
    status: str
    explanation: str
    resolved_minutes_ago: int | None


@dataclass
class PlannedTransfer:
    account: str
    from_rep: str
    to_rep: str
    minutes_ago: int
    reason: str
    review_text: str | None  # None: the loss was never reviewed


@dataclass
class PlannedRelease:
    account: str
    reason: str
    note: str
    review_text: str


@dataclass
class PlannedBid:
    account: str
    rep: str
    minutes_after_opening: int
    account_plan: str
    visit_plan: str
    committed_revenue_yuan: int


@dataclass
class PlannedDecision:
    position: int  # the listing's place among the round's releases
    kind: str  # DecisionKind.OVERRIDDEN (the best other eligible bidder wins) or NO_AWARD
    reason: str


@dataclass
class PlannedRound:
    title: str
    opens_days: float  # relative to now: negative is in the past
    closes_days: float
    releases: list[PlannedRelease]
    bids: list[PlannedBid]
    publish: bool = True
    # Days from now when the results were announced into the standstill window (公示期).
    announced_days: float | None = None
    # A past round run to the end: decided by this manager the day after its deadline (the
    # ranking accepted except for `decisions`), announced, and in force after its window.
    decided_by: str | None = None
    decisions: list[PlannedDecision] = field(default_factory=list)
    # Blind review (匿名评审): the managers named to review its applications; the round runs
    # under rules with a [review] section (REVIEW_PILOT_RULES) adopted for it alone.
    reviewers: tuple[str, ...] = ()
    # Those of them who have reviewed every application, in turn (None: all of them, which
    # completes the review and scores the round), the first `review_after` after the deadline.
    reviewed_by: tuple[str, ...] | None = None
    review_after: timedelta = timedelta(days=1)


@dataclass
class World:
    reps: list[PlannedRep]
    accounts: list[PlannedAccount]
    opportunities: list[PlannedOpportunity]
    incidents: list[PlannedIncident]
    transfers: list[PlannedTransfer]
    rounds: list[PlannedRound]


def weighted(rng: random.Random, options: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([value for value, _ in options], [weight for _, weight in options])[0]


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN_NAMES)


def plan_reps(rng: random.Random) -> list[PlannedRep]:
    branches = [code for code, _, count in BRANCHES for _ in range(count)]
    for fixed in NAMED_REPS.values():
        branches.remove(fixed["branch"])
    rng.shuffle(branches)
    taken = {fixed["name"] for fixed in NAMED_REPS.values()}
    # Several reps at or above the default rules' maximum, so the capacity rules bite.
    crowded = [DEFAULT_CAPACITY_MAX + over for over in (0, 0, 0, 0, 1, 1, 2, 2)]
    reps = []
    for number in range(1, sum(count for _, _, count in BRANCHES) + 1):
        username = f"rep{number:02d}"
        name = person_name(rng)
        while name in taken:
            name = person_name(rng)
        taken.add(name)
        draw = rng.random()
        holdings = round(rng.triangular(25, 37, 28))
        skill = 0.5 + 0.45 * rng.betavariate(2, 2)
        hired_days_ago = (rng.randint(90, 300) if rng.random() < 0.12
                          else rng.randint(300, 8 * 365))
        fixed = NAMED_REPS.get(username)
        if fixed is not None:
            name, holdings, skill = fixed["name"], fixed["holdings"], fixed["skill"]
            hired_days_ago, branch = fixed["hired"], fixed["branch"]
            taken.add(name)
        else:
            branch = branches.pop()
            if crowded and draw < 0.2:
                holdings = crowded.pop()
        status = RepStatus.ON_LEAVE if username in ON_LEAVE else RepStatus.ACTIVE
        reps.append(PlannedRep(username, name, branch, hired_days_ago, status, round(skill, 3),
                               holdings))
    for holdings in crowded:  # the crowded reps the draw skipped go to the last ordinary reps
        rep = next(rep for rep in reversed(reps)
                   if rep.username not in NAMED_REPS and rep.holdings < DEFAULT_CAPACITY_MAX)
        rep.holdings = holdings
    return reps


def company_name(rng: random.Random, branch: str, ownership: str, industry_words: tuple[str, ...]
                 ) -> str:
    city = weighted(rng, CITIES[branch])
    if ownership == "government":
        return f"{city}市{rng.choice(DISTRICTS[city])}{rng.choice(AGENCIES)}"
    word = rng.choice(industry_words)
    if ownership == "joint_venture":
        brand = rng.choice(FOREIGN_BRANDS)
        return rng.choice((f"{city}{brand}{word}有限公司", f"{brand}（中国）{word}有限公司"))
    first = rng.choice(BRAND_FIRST)
    second = rng.choice(BRAND_SECOND.replace(first, ""))
    brand = first + second
    if ownership == "listed":
        return f"{city}{brand}{word}股份有限公司"
    if ownership == "state_owned":
        return rng.choice((f"{city}{brand}{word}集团有限公司", f"{city}市{brand}{word}总公司"))
    return f"{city}{brand}{word}" + rng.choice(("有限公司", "有限公司", "有限公司", "集团有限公司"))


def annual_value(rng: random.Random) -> int:
    if rng.random() < 0.03:
        return rng.randint(100, 600) * 10_000  # the few accounts worth millions
    value = rng.lognormvariate(math.log(70_000), 0.85)
    return int(min(500_000, max(10_000, value)) // 1000 * 1000)


def phone_number(rng: random.Random) -> str:
    return rng.choice(PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def plan_contacts(rng: random.Random, ownership: str) -> list[tuple[str, str, str, str]]:
    roles = ["decision_maker", *rng.sample(("user", "purchaser", "contact"), rng.randint(1, 3))]
    titles = GOVERNMENT_TITLES if ownership == "government" else CONTACT_TITLES
    return [(role, person_name(rng), rng.choice(titles[role]), phone_number(rng))
            for role in roles]


def plan_accounts(rng: random.Random, reps: list[PlannedRep]) -> list[PlannedAccount]:
    slots: list[tuple[str, str | None]] = [(rep.branch, rep.username) for rep in reps
                                           for _ in range(rep.holdings)]
    branch_weights = tuple((code, count) for code, _, count in BRANCHES)
    while len(slots) < ACCOUNT_COUNT:
        slots.append((weighted(rng, branch_weights), None))
    rng.shuffle(slots)
    industries = [(name, weight) for name, weight, _ in INDUSTRIES]
    words = {name: words for name, _, words in INDUSTRIES}
    names: set[str] = set()
    accounts = []
    for index, (branch, owner) in enumerate(slots, start=1):
        ownership = weighted(rng, OWNERSHIP)
        industry = (GOVERNMENT_INDUSTRY if ownership == "government"
                    else weighted(rng, tuple(industries)))
        name = company_name(rng, branch, ownership, words.get(industry, ()))
        while name in names:
            name = company_name(rng, branch, ownership, words.get(industry, ()))
        names.add(name)
        value = annual_value(rng)
        sponsor_chance = 0.45 if value >= 1_000_000 else 0.012
        sponsor = weighted(rng, SPONSORS) if rng.random() < sponsor_chance else None
        accounts.append(PlannedAccount(
            external_id=f"KA-{index:06d}", name=name, industry=industry,
            ownership_type=ownership, branch=branch, annual_value_yuan=value, owner=owner,
            executive_sponsor=sponsor, created_days_ago=rng.randint(90, 3000),
            contacts=plan_contacts(rng, ownership)))
    return accounts


def plan_opportunities(rng: random.Random, reps: list[PlannedRep],
                       accounts: list[PlannedAccount]) -> list[PlannedOpportunity]:
    """Two years of funnel history; a rep's skill is the chance to advance each stage."""
    held: dict[str, list[PlannedAccount]] = defaultdict(list)
    for account in accounts:
        if account.owner is not None:
            held[account.owner].append(account)
    opportunities = []
    for rep in reps:
        window_days = min(730, rep.hired_days_ago - 14)
        count = max(2, round(window_days / 30.4 * rng.uniform(1.1, 2.2)))
        # A handful of each rep's accounts stay without any opportunity (neglected ones).
        active = [account for account in held[rep.username] if rng.random() < 0.8]
        active = active or held[rep.username]
        for _ in range(count):
            account = rng.choice(active)
            opened = rng.randint(10 * MINUTES_PER_DAY, window_days * MINUTES_PER_DAY)
            moment = opened
            stages = [("potential", moment)]
            for stage in STAGES_AFTER_POTENTIAL:
                moment -= rng.randint(5 * MINUTES_PER_DAY, 40 * MINUTES_PER_DAY)
                if moment <= 0:
                    break  # still open today, in the last stage it reached
                chance = rep.skill + (0.08 if stage == "intent" else 0.0)
                if rng.random() >= chance:
                    stages.append(("lost", moment))
                    break
                stages.append((stage, moment))
            amount = max(5000, int(account.annual_value_yuan * rng.uniform(0.15, 0.8)) // 1000 * 1000)
            opportunities.append(PlannedOpportunity(
                f"OPP-{len(opportunities) + 1:06d}", account.external_id, rep.username, amount,
                stages))
    return opportunities


def plan_incidents(rng: random.Random, reps: list[PlannedRep], accounts: list[PlannedAccount],
                   opportunities: list[PlannedOpportunity]) -> list[PlannedIncident]:
    # The handbook holds a rep to account only for an account that placed no order with us:
    # accounts with a won deal are never watched.
    ordered = {opportunity.account for opportunity in opportunities
               if opportunity.stages[-1][0] == "won"}
    held: dict[str, list[PlannedAccount]] = defaultdict(list)
    for account in accounts:
        if account.owner is not None and account.external_id not in ordered:
            held[account.owner].append(account)
    # Weaker reps are watched more often.
    candidates = sorted((rep for rep in reps if rep.username != "rep02"),
                        key=lambda rep: (rep.skill + rng.uniform(0, 0.25), rep.username))
    incidents = []
    for rep in (rep for rep in candidates if held[rep.username]):
        if len({incident.rep for incident in incidents}) == 16:
            break
        for _ in range(rng.randint(1, 4)):
            seen_days = rng.randint(1, 360)
            if seen_days < 15:
                status = "open"
            else:
                status = weighted(rng, (("explained", 4), ("accepted", 3), ("upheld", 2),
                                        ("open", 1)))
            seen = seen_days * MINUTES_PER_DAY + rng.randint(0, MINUTES_PER_DAY)
            resolved = None
            if status in ("accepted", "upheld"):
                resolved = max(60, seen - rng.randint(3, 14) * MINUTES_PER_DAY)
            incidents.append(PlannedIncident(
                rng.choice(held[rep.username]).external_id, rep.username,
                rng.choice(COMPETITOR_SITES), rng.choice(AD_TYPES), seen, status,
                "" if status == "open" else rng.choice(EXPLANATIONS), resolved))
    return incidents


def plan_transfers(rng: random.Random, reps: list[PlannedRep],
                   accounts: list[PlannedAccount]) -> list[PlannedTransfer]:
    """Past direct transfers into the current owners: the filing register's history.

    The CRM's first load gave each of these accounts to the rep it was later transferred from
    (`first_owners`). A transfer may not take a rep past the maximum: accounts go to reps
    within it who lose none by transfer, so a receiver never holds more than the plan gives
    them in the end.
    """
    by_branch: dict[str, list[PlannedRep]] = defaultdict(list)
    for rep in reps:
        by_branch[rep.branch].append(rep)
    losers = {branch: sorted(members, key=lambda rep: rep.skill)[:6]
              for branch, members in by_branch.items()}
    giving = {rep.username for members in losers.values() for rep in members}
    within = {rep.username for rep in reps if rep.holdings <= DEFAULT_CAPACITY_MAX}
    owned = [account for account in accounts
             if account.owner is not None and account.owner not in NAMED_REPS
             and account.owner in within and account.owner not in giving]
    transfers = []
    for account in rng.sample(owned, 48):
        from_rep = rng.choice([rep for rep in losers[account.branch]
                               if rep.username != account.owner])
        transfers.append(PlannedTransfer(
            account.external_id, from_rep.username, account.owner,
            rng.randint(20, 600) * MINUTES_PER_DAY + rng.randint(0, 600),
            rng.choice(TRANSFER_REASONS),
            rng.choice(TRANSFER_REVIEWS) if rng.random() < 0.7 else None))
    transfers.sort(key=lambda transfer: -transfer.minutes_ago)
    return transfers


def release_for(rng: random.Random, account: PlannedAccount, reason: str,
                reps: dict[str, PlannedRep]) -> PlannedRelease:
    if account.owner is None:
        return PlannedRelease(account.external_id, ReleaseReason.REP_LEFT,
                              RELEASE_NOTES[ReleaseReason.REP_LEFT], "")
    review = rng.choice(RELEASE_REVIEWS[reason]).format(
        rep=reps[account.owner].display_name, account=account.name)
    return PlannedRelease(account.external_id, reason, RELEASE_NOTES.get(reason, ""), review)


def choose_releases(rng: random.Random, world_accounts: list[PlannedAccount],
                    reps: dict[str, PlannedRep], opportunities: list[PlannedOpportunity],
                    incidents: list[PlannedIncident], taken: set[str], size: int
                    ) -> list[PlannedRelease]:
    """Accounts for one round, each with a reason that its history supports."""
    free = [account for account in world_accounts
            if account.executive_sponsor is None and account.external_id not in taken
            and account.owner != "rep02"]
    with_opportunity = {opportunity.account for opportunity in opportunities}
    upheld = {incident.account for incident in incidents if incident.status == "upheld"}
    groups = [
        (ReleaseReason.OVER_CAPACITY,
         [a for a in free
          if a.owner is not None and reps[a.owner].holdings > DEFAULT_CAPACITY_MAX], size // 6),
        (ReleaseReason.ACCOUNTABILITY, [a for a in free if a.external_id in upheld], size // 8),
        (ReleaseReason.NEGLECTED,
         [a for a in free if a.owner is not None and a.external_id not in with_opportunity],
         size // 3),
        (ReleaseReason.REP_LEFT, [a for a in free if a.owner is None], size // 4),
        (ReleaseReason.EXECUTIVE_DECISION, [a for a in free if a.owner is not None], 1),
        (ReleaseReason.OTHER, [a for a in free if a.owner is not None], 1),
    ]
    releases = []
    for reason, pool, count in groups:
        pool = [account for account in pool if account.external_id not in taken]
        for account in rng.sample(pool, min(count, len(pool))):
            taken.add(account.external_id)
            releases.append(release_for(rng, account, reason, reps))
    rest = [account for account in free if account.external_id not in taken
            and account.owner is not None and account.external_id not in with_opportunity]
    for account in rng.sample(rest, size - len(releases)):
        taken.add(account.external_id)
        releases.append(release_for(rng, account, ReleaseReason.NEGLECTED, reps))
    rng.shuffle(releases)
    return releases


def plan_bid(rng: random.Random, account: PlannedAccount, rep: PlannedRep, minutes: int
             ) -> PlannedBid:
    english = rng.random() < 0.2
    factor = rng.uniform(0.8, 1.2) + (rep.skill - 0.6) * 0.8
    revenue = max(10_000, int(account.annual_value_yuan * factor) // 1000 * 1000)
    contact = next(name for role, name, _, _ in account.contacts if role == "decision_maker")
    values = {"account": account.name, "industry": account.industry, "contact": contact,
              "industry_en": INDUSTRY_EN.get(account.industry, "public-sector"),
              "revenue": round(revenue / 10_000, 1), "yuan": f"{revenue:,}"}
    plan = rng.choice(PLANS_EN if english else PLANS_ZH).format(**values)
    visits = rng.choice(VISITS_EN if english else VISITS_ZH)
    return PlannedBid(account.external_id, rep.username, minutes, plan, visits, revenue)


def plan_bids(rng: random.Random, releases: list[PlannedRelease],
              accounts: dict[str, PlannedAccount], reps: list[PlannedRep], *,
              window_minutes: int, bidders: tuple[int, int], share_with_bids: float,
              must_bid: dict[str, int], avoid: tuple[str, ...]) -> list[PlannedBid]:
    """Bids of 'bidders' reps on most listings; `must_bid` names reps bidding on n listings."""
    by_branch: dict[str, list[PlannedRep]] = defaultdict(list)
    for rep in reps:
        if rep.username not in avoid:
            by_branch[rep.branch].append(rep)
    bids = []
    chosen: dict[str, list[str]] = {}
    for release in releases:
        account = accounts[release.account]
        candidates = [rep for rep in by_branch[account.branch] if rep.username != account.owner]
        others = [rep for rep in reps if rep.branch != account.branch and rep.username not in avoid]
        count = rng.randint(*bidders) if rng.random() < share_with_bids else rng.randint(0, 1)
        picked = rng.sample(candidates, min(count, len(candidates)))
        if picked and rng.random() < 0.1:
            picked[-1] = rng.choice(others)  # now and then a rep from another branch tries
        chosen[release.account] = [rep.username for rep in picked]
    reps_by_name = {rep.username: rep for rep in reps}
    for username, listings in must_bid.items():
        rep = reps_by_name[username]
        fitting = [release.account for release in releases
                   if accounts[release.account].branch == rep.branch
                   and accounts[release.account].owner != username]
        for account_id in fitting[:listings]:
            if username not in chosen[account_id]:
                chosen[account_id].append(username)
    for release in releases:
        account = accounts[release.account]
        for username in chosen[release.account]:
            minutes = rng.randint(60, window_minutes)
            bids.append(plan_bid(rng, account, reps_by_name[username], minutes))
    bids.sort(key=lambda bid: (bid.minutes_after_opening, bid.account, bid.rep))
    return bids


def plan_rounds(rng: random.Random, world: World) -> list[PlannedRound]:
    reps = {rep.username: rep for rep in world.reps}
    accounts = {account.external_id: account for account in world.accounts}
    taken: set[str] = set()
    closed_releases = choose_releases(rng, world.accounts, reps, world.opportunities,
                                      world.incidents, taken, 25)
    closed = PlannedRound(
        "第11期客户资源竞标（全国）", -14, -2, closed_releases,
        plan_bids(rng, closed_releases, accounts, world.reps, window_minutes=11 * MINUTES_PER_DAY,
                  bidders=(3, 8), share_with_bids=0.88, must_bid={"rep01": 2, "rep03": 2,
                                                                  "rep02": 1},
                  avoid=()))
    open_releases = choose_releases(rng, world.accounts, reps, world.opportunities,
                                    world.incidents, taken, 32)
    opened = PlannedRound(
        "第12期客户资源竞标（全国）", -2, 5, open_releases,
        plan_bids(rng, open_releases, accounts, world.reps,
                  window_minutes=2 * MINUTES_PER_DAY - 90, bidders=(1, 4),
                  share_with_bids=0.6, must_bid={"rep01": 1, "rep03": 1}, avoid=("rep01",
                                                                                  "rep03")))
    # A draft for next week with executive-sponsored accounts that wait for their sponsor.
    sponsored = [account for account in world.accounts
                 if account.executive_sponsor and account.owner not in (None, "rep02")
                 and account.external_id not in taken][:2]
    draft_releases = [release_for(rng, account, ReleaseReason.EXECUTIVE_DECISION, reps)
                      for account in sponsored]
    draft_releases += choose_releases(rng, world.accounts, reps, world.opportunities,
                                      world.incidents, taken, 4)
    draft = PlannedRound("第13期客户资源竞标（全国）", 3, 10, draft_releases, [], publish=False)
    # Planned last, so that the rounds above draw the same accounts and bids as before it.
    announced_releases = choose_releases(rng, world.accounts, reps, world.opportunities,
                                         world.incidents, taken, 6)
    announced = PlannedRound(
        "第10期客户资源竞标（全国）", -12, -5, announced_releases,
        plan_bids(rng, announced_releases, accounts, world.reps,
                  window_minutes=7 * MINUTES_PER_DAY - 90, bidders=(2, 4), share_with_bids=1.0,
                  must_bid={"rep01": 1, "rep02": 1}, avoid=()),
        announced_days=-1)
    history = plan_history(rng, world, taken)
    in_review = plan_round_in_review(rng, world, taken)
    # Run oldest first, so each round meets the holdings the rounds before it left.
    return [*history, closed, opened, draft, announced, in_review]


# Management's written reasons when a past round's ranking was not followed.
OVERRIDE_REASONS = (
    "排名第一的销售有一起竞品投放问责仍在处理中，而排名第二的销售长期覆盖该客户所在园区，"
    "与其决策人已有合作基础，经管理部讨论改由第二名负责。",
    "客户明确希望由熟悉其行业的销售跟进；排名第二的销售服务过其两家同行客户，方案更贴合，"
    "两者得分相差很小，改由第二名中标。",
    "排名第一的销售下月调往渠道部，无法保证全年跟进；改由排名第二的销售中标，避免客户再次交接。",
)
NO_AWARD_REASON = ("客户正在进行组织架构调整，招聘预算冻结到下季度，本期不予分配；"
                   "调整完成后重新释放竞标。")
NOT_ELIGIBLE_REASON = "没有符合竞标资格的申请，本期不予分配。"
HISTORY_ROUNDS = range(2, 10)  # 第2期 .. 第9期, one a month before 第10期
REVIEWED_ROUND = 9  # the blind-review pilot (匿名评审试点)
REVIEWERS = ("manager", "manager2")


def plan_history(rng: random.Random, world: World, taken: set[str]) -> list[PlannedRound]:
    """Eight monthly rounds before 第10期, run to the end, so that fairness shows over time.

    Small (a few accounts, two or three bids each), so the build stays quick: mostly accounts
    whose rep left, and now and then one from a rep above the band, which moves reps into it.
    Three rankings are overridden and one listing is not awarded, each with a written reason,
    by both managers; 第9期 used blind review.
    """
    reps = {rep.username: rep for rep in world.reps}
    accounts = {account.external_id: account for account in world.accounts}
    # Transferred accounts stay out: their filed history names today's owners.
    taken |= {transfer.account for transfer in world.transfers}
    crowded = sorted(rep.username for rep in world.reps if rep.holdings > DEFAULT_CAPACITY_MAX)
    overrides = {3: (0, DecisionKind.OVERRIDDEN, OVERRIDE_REASONS[0]),
                 5: (1, DecisionKind.NO_AWARD, NO_AWARD_REASON),
                 6: (2, DecisionKind.OVERRIDDEN, OVERRIDE_REASONS[1]),
                 8: (0, DecisionKind.OVERRIDDEN, OVERRIDE_REASONS[2])}
    rounds = []
    for number in HISTORY_ROUNDS:
        opens = -12 - 30 * (10 - number) - rng.randint(0, 3)
        reviewed = number == REVIEWED_ROUND
        # The pilot has an account in each branch, so rep01 and rep03 can both bid.
        branches = (("BJ", "SH", "GZ", "BJ", "SH") if reviewed else
                    tuple(weighted(rng, tuple((code, count) for code, _, count in BRANCHES))
                          for _ in range(rng.randint(4, 5))))
        releases = [release_left_account(rng, world, branch, taken, reps) for branch in branches]
        if crowded and number % 2 == 0:
            owner = crowded.pop()
            account = rng.choice([account for account in world.accounts
                                  if account.owner == owner and account.executive_sponsor is None
                                  and account.external_id not in taken])
            taken.add(account.external_id)
            releases.append(release_for(rng, account, ReleaseReason.OVER_CAPACITY, reps))
        # rep01 bids only where named, so that the rounds after these still find room for him.
        must_bid = {"rep01": 1, "rep03": 1} if reviewed else (
            {"rep01": 1} if number == 5 else {})
        bids = plan_bids(rng, releases, accounts, world.reps,
                         window_minutes=7 * MINUTES_PER_DAY - 90, bidders=(2, 3),
                         share_with_bids=1.0, must_bid=must_bid, avoid=("rep01", "rep02"))
        # Awards in force stay in the account's branch, as the CRM's accounts are.
        bids = [bid for bid in bids
                if reps[bid.rep].branch == accounts[bid.account].branch]
        decisions = []
        if number in overrides:
            position, kind, reason = overrides[number]
            decisions.append(PlannedDecision(position, kind, reason))
        rounds.append(PlannedRound(
            f"第{number}期客户资源竞标（全国）", opens, opens + 7, releases, bids,
            decided_by=REVIEWERS[number % 2], decisions=decisions,
            reviewers=REVIEWERS if reviewed else ()))
    return rounds


def release_left_account(rng: random.Random, world: World, branch: str, taken: set[str],
                         reps: dict[str, PlannedRep]) -> PlannedRelease:
    """One account of `branch` whose rep left (no owner, no executive sponsor, not released
    yet), drawn at random and released."""
    pool = [account for account in world.accounts
            if account.owner is None and account.branch == branch
            and account.executive_sponsor is None and account.external_id not in taken]
    account = rng.choice(pool)
    taken.add(account.external_id)
    return release_for(rng, account, ReleaseReason.REP_LEFT, reps)


IN_REVIEW_TITLE = "客户资源补充竞标（匿名评审）"
# Only manager2 has reviewed so far: with the pilot's two reviews per application the review
# waits for manager, who finds every application left to him under 匿名评审 (/review).
IN_REVIEW_DONE_BY = ("manager2",)


def plan_round_in_review(rng: random.Random, world: World, taken: set[str]) -> PlannedRound:
    """A small round under the review pilot's rules whose deadline passed a day ago, halfway
    through its blind review, so that its queue, progress and early close can be tried.

    Planned after every other round, so that they draw the same accounts and bids as before
    it. An account whose rep left in each branch and one more in Shanghai, so rep03 can bid.
    """
    reps = {rep.username: rep for rep in world.reps}
    accounts = {account.external_id: account for account in world.accounts}
    releases = [release_left_account(rng, world, branch, taken, reps)
                for branch in ("BJ", "SH", "GZ", "SH")]
    # Reps who could not bid (at capacity, on leave) stay out, so every account has bids.
    unable = tuple(rep.username for rep in world.reps
                   if rep.holdings >= DEFAULT_CAPACITY_MAX or rep.status != RepStatus.ACTIVE)
    bids = plan_bids(rng, releases, accounts, world.reps, window_minutes=6 * MINUTES_PER_DAY,
                     bidders=(2, 3), share_with_bids=1.0, must_bid={"rep03": 1},
                     avoid=("rep01", *unable))
    bids = [bid for bid in bids if reps[bid.rep].branch == accounts[bid.account].branch]
    return PlannedRound(IN_REVIEW_TITLE, -8, -1, releases, bids, reviewers=REVIEWERS,
                        reviewed_by=IN_REVIEW_DONE_BY, review_after=timedelta(hours=3))


def plan_world(seed: int = SEED) -> World:
    """The whole demo world as data; the same seed gives the same world."""
    rng = random.Random(seed)
    reps = plan_reps(rng)
    accounts = plan_accounts(rng, reps)
    opportunities = plan_opportunities(rng, reps, accounts)
    incidents = plan_incidents(rng, reps, accounts, opportunities)
    transfers = plan_transfers(rng, reps, accounts)
    world = World(reps, accounts, opportunities, incidents, transfers, [])
    world.rounds = plan_rounds(rng, world)
    return world


def forecast_rows(rep: PlannedRep, now: datetime) -> list[dict]:
    """Twelve complete months of forecast and actual: skilled reps forecast closer to the mark.

    Drawn from a generator of the rep's own, so the rest of the world's plan is unchanged.
    """
    rng = random.Random(f"{SEED}:{rep.username}:forecasts")
    rows = []
    month = date(now.year, now.month, 1)
    for _ in range(12):
        month = (month - timedelta(days=1)).replace(day=1)
        forecast = rng.randrange(200_000, 900_000, 10_000) * rep.holdings // 35
        miss = rng.gauss(0, 0.35 * (1.1 - rep.skill))
        rows.append({"month": month, "forecast_yuan": forecast,
                     "actual_yuan": max(0, round(forecast * (1 + miss), -3))})
    return rows


# --- writing it -------------------------------------------------------------------------


# The row that says the demo built this database: "building" until the build completes.
DEMO_MARKER = "demo"
MARKER_BUILDING = "building"
MARKER_BUILT = "built"
# The tables whose rows are real data: a database holding any of them is not the demo's.
DATA_TABLES = ("users", "accounts", "filings")


class DemoRefused(RuntimeError):
    """The database holds data the demo did not create, so the demo leaves it alone."""


class DemoState:
    EMPTY = "empty"
    BUILT = "built"  # by the demo, completely
    UNFINISHED = "unfinished"  # by the demo, stopped part way
    FOREIGN = "foreign"  # holds data the demo did not create


def demo_state(connection: Connection) -> str:
    """Who filled this database; works before migrations too (tables may be missing)."""
    tables = set(inspect(connection).get_table_names())
    if "instance_markers" in tables:
        marker = connection.scalar(select(InstanceMarker.value)
                                   .where(InstanceMarker.name == DEMO_MARKER))
        if marker == MARKER_BUILT:
            return DemoState.BUILT
        if marker is not None:
            return DemoState.UNFINISHED
    for name in DATA_TABLES:
        if name in tables and connection.scalar(select(literal(1)).select_from(table(name))
                                                .limit(1)):
            return DemoState.FOREIGN
    return DemoState.EMPTY


REFUSALS = {
    DemoState.FOREIGN: (
        "This database already holds users, accounts or filings that `bidhub demo` did not "
        "create, and the demo builds only into an empty database: nothing was written and no "
        "password was changed. Point BIDHUB_DATABASE_URL at a new, empty database to try the "
        "demo."),
    DemoState.UNFINISHED: (
        "An earlier `bidhub demo` stopped before the demo world was complete, so this database "
        "holds part of it; nothing was written now. Delete this database (or point "
        "BIDHUB_DATABASE_URL at a new, empty one) and run `bidhub demo` again."),
}


def check_demo_database(engine: Engine) -> str:
    """The database's demo state; DemoRefused when the demo may not build into it."""
    with engine.connect() as connection:
        state = demo_state(connection)
    if state in REFUSALS:
        raise DemoRefused(REFUSALS[state])
    return state


def has_demo(session: Session) -> bool:
    """Whether the demo built this database completely."""
    return demo_state(session.connection()) == DemoState.BUILT


def demo_logins(session: Session) -> list[tuple[str, str, str]]:
    users = {user.username: user for user in session.scalars(
        select(User).where(User.username.in_(LOGIN_ORDER)))}
    return [(str(users[name].role), name, users[name].display_name)
            for name in LOGIN_ORDER if name in users]


def build_demo(session: Session, now: datetime) -> None:
    """Build the demo world once (does nothing when it is there already) and commit it.

    Only into an empty database: one holding anything the demo did not create raises
    DemoRefused before anything is written.
    """
    state = demo_state(session.connection())
    if state == DemoState.BUILT:
        return
    if state in REFUSALS:
        session.rollback()
        raise DemoRefused(REFUSALS[state])
    world = plan_world()
    users = write_world(session, world, now)
    run_rounds(session, world, users, now)
    import_kept_promises(session, users["admin"], len(world.opportunities), now)
    ask_a_sponsored_transfer(session, users, now)
    # The last imports dropped the snapshots of the reps whose deals they brought: rebuilt as
    # the scheduler's refresh would, so the first pages and bids read stored track records.
    refresh_track_records(session, now)
    with unit_of_work(session):
        session.get(InstanceMarker, DEMO_MARKER).value = MARKER_BUILT
    refresh_planner_statistics(session)


# How the demo's past winners kept their promises: share of the expected revenue won so far.
PROMISE_OUTCOMES: tuple[tuple[tuple[float, float], int], ...] = (
    ((0.85, 1.1), 6), ((0.3, 0.65), 3), ((1.25, 1.6), 1))


def import_kept_promises(session: Session, admin: User, numbered: int, now: datetime) -> None:
    """The deals the past rounds' winners closed on the accounts they won, as today's CRM
    export of new opportunities, so their promises (承诺兑现) have something to be kept by:
    most about on track, some short, one or two over-delivered."""
    from bidhub.models import Bid, Decision, Listing

    won = session.execute(
        select(Account.external_id, User.external_id, Bid.committed_revenue_yuan,
               Listing.applied_at).select_from(Decision)
        .join(Bid, Decision.bid_id == Bid.id).join(Listing, Decision.listing_id == Listing.id)
        .join(Account, Listing.account_id == Account.id).join(User, Bid.rep_id == User.id)
        .where(Listing.applied_at.is_not(None)).order_by(Listing.applied_at, Listing.id)).all()
    records = [OPPORTUNITY_HEADER]
    for account, rep, committed, applied_at in won:
        days = (now - applied_at).days
        if days < 30:
            continue  # no promise a whole month old yet
        rng = random.Random(f"{SEED}:promise:{account}")
        low, high = rng.choices([span for span, _ in PROMISE_OUTCOMES],
                                [weight for _, weight in PROMISE_OUTCOMES])[0]
        expected = committed * min(12, days // 30) / 12
        deals = rng.randint(1, 3)
        amount = int(expected * rng.uniform(low, high) / deals) // 1000 * 1000
        for _ in range(deals):
            closed = now - timedelta(days=rng.randint(3, days - 24))
            stages = [closed - timedelta(days=gap) for gap in (21, 15, 9, 4)] + [closed]
            history = zip(("potential", *STAGES_AFTER_POTENTIAL), stages, strict=True)
            numbered += 1
            records.append([
                f"OPP-{numbered:06d}", account, rep, str(max(amount, 1000)), "won",
                crm_day(stages[0]), crm_day(closed),
                ";".join(f"{stage}:{crm_day(moment)}" for stage, moment in history)])
    file = CrmFile("opportunities", csv_bytes(records, "utf-8-sig"), len(records) - 1)
    import_crm_file(session, admin, ImportKind.OPPORTUNITIES,
                    {ImportKind.OPPORTUNITIES: file}, now=now)


def crm_day(moment: datetime) -> str:
    return moment.astimezone(CRM_ZONE).date().isoformat()


def ask_a_sponsored_transfer(session: Session, users: dict[str, User], now: datetime) -> None:
    """A manager's transfer of a Beijing account the branch GM sponsors, waiting for him."""
    from bidhub.services.filings import transfer_account
    from bidhub.services.ownership import unfinished_listing_of

    gm = users["gm_bj"]
    held = dict(session.execute(select(Account.owner_id, func.count(Account.id))
                                .where(Account.owner_id.is_not(None))
                                .group_by(Account.owner_id)).all())
    receiver = users["rep01"]  # below the maximum, and the README's first rep
    for account in session.scalars(select(Account).where(
            Account.sponsor_id == gm.id, Account.owner_id.is_not(None),
            Account.owner_id != receiver.id).order_by(Account.external_id)):
        if unfinished_listing_of(session, account.id) is None and held[receiver.id] < 39:
            transfer_account(
                session, users["manager"], account_id=account.id, to_rep_id=receiver.id,
                reason="原负责销售调往大客户二部，客户要求由熟悉其业务的王伟接手。",
                review_text="原销售近半年拜访次数不足，客户对响应速度有意见，需尽快交接。",
                now=now - timedelta(hours=5))
            return


def first_owners(world: World) -> dict[str, str]:
    """The owner the CRM's first load gives each account that was transferred later: the rep
    it was transferred from (the plan's owner is the owner after the transfer)."""
    return {transfer.account: transfer.from_rep for transfer in world.transfers}


def date_initial_rules(session: Session, at: datetime) -> None:
    """The initial rules as adopted when the department's records begin (`at`), before the
    demo's rounds and the adoptions that follow them: `bidhub init` adopted them at the moment
    it ran, which in a world built with months of history would read as the latest adoption."""
    from bidhub.services.rule_sets import ADOPTED, active_rule_set

    initial = active_rule_set(session)
    initial.created_at = at
    session.execute(update(AuditEvent).where(AuditEvent.action == ADOPTED,
                                             AuditEvent.target == f"rule_set:{initial.id}")
                    .values(at=at))


def write_world(session: Session, world: World, now: datetime) -> dict[str, User]:
    """Staff and branches directly; everything a CRM holds through the CRM import, as files;
    the direct transfers since the first load through the one change of owner."""
    from bidhub.services.filings import rules_in_force
    from bidhub.services.loss_reviews import note_management_review
    from bidhub.services.ownership import OwnerChange, change_owners
    from bidhub.services.users import ensure_branch, hash_password, new_session_token

    def ago(minutes: int) -> datetime:
        return now - timedelta(minutes=minutes)

    password_hash = hash_password(DEMO_PASSWORD)
    # Marked first, in the same commit as the first rows, so no partial build looks foreign.
    with unit_of_work(session):
        session.add(InstanceMarker(name=DEMO_MARKER, value=MARKER_BUILDING, created_at=now))
        date_initial_rules(session, ago(500 * MINUTES_PER_DAY))
        branch_ids = {code: ensure_branch(session, code, name, BRANCH_NAMES_ZH[code]).id
                      for code, name, _ in BRANCHES}
        session.execute(insert(User), [
            {"username": username, "display_name": name, "password_hash": password_hash,
             "role": role, "branch_id": None, "is_active": True, "status": RepStatus.ACTIVE,
             "hired_on": (now - timedelta(days=1500 + 200 * index)).date(),
             "session_token": new_session_token(), "failed_login_count": 0,
             "created_at": ago((400 + index) * MINUTES_PER_DAY)}
            for index, (username, name, role) in enumerate(STAFF)])
        session.execute(insert(User), [
            {"username": username, "display_name": name, "password_hash": password_hash,
             "role": Role.EXECUTIVE, "executive_title": title,
             "branch_id": branch_ids[branch] if branch else None, "is_active": True,
             "status": RepStatus.ACTIVE, "hired_on": (now - timedelta(days=3000)).date(),
             "session_token": new_session_token(), "failed_login_count": 0,
             "created_at": ago(500 * MINUTES_PER_DAY)}
            for username, name, title, branch in EXECUTIVES])
    admin = session.scalars(select(User).where(User.username == "admin")).one()

    loaded_at = ago(first_load_minutes_ago(world))
    files = crm_files(world, now)
    import_crm_file(session, admin, ImportKind.REPS, files, now=loaded_at)
    # Imported reps get a password nobody knows; the demo reps share the published one.
    with unit_of_work(session):
        session.execute(update(User).where(
            User.role == Role.REP,
            User.external_id.in_([rep_external_id(rep) for rep in world.reps]))
                        .values(password_hash=password_hash))
    # The hire dates the first load lacked came with the roster of the day the last of those
    # reps joined.
    updated_at, roster = roster_update(world, now)
    import_crm_file(session, admin, ImportKind.REPS, {ImportKind.REPS: roster}, now=updated_at,
                    updates=True)
    import_crm_file(session, admin, ImportKind.ACCOUNTS, files, now=loaded_at)
    import_crm_file(session, admin, ImportKind.OPPORTUNITIES, files, now=now)
    # The monthly forecast export arrives each month (so a bid's track record always rests on
    # CRM data a few weeks old at most, and the stale-data flag stays for real cases).
    for imported_at, month_file in forecast_files(world, now):
        import_crm_file(session, admin, ImportKind.FORECASTS,
                        {ImportKind.FORECASTS: month_file}, now=imported_at)

    with unit_of_work(session):
        user_ids = dict(session.execute(select(User.username, User.id)).all())
        account_ids = dict(session.execute(select(Account.external_id, Account.id)).all())
        manager_id = user_ids["manager"]
        rules = rules_in_force(session)
        for position, transfer in enumerate(world.transfers):
            at = ago(transfer.minutes_ago)
            # As a manager's transfer moves it: locked, within capacity, filed, and the loss
            # review made due from the rep who held it.
            [filing] = change_owners(session, [OwnerChange(
                account_ids[transfer.account], user_ids[transfer.to_rep], filing={
                    "kind": FilingKind.DIRECT_TRANSFER, "reason": transfer.reason,
                    "decided_by_id": manager_id, "rule_set_sha256": rules.sha256})],
                limit=rules.capacity_max, now=at)
            note_management_review(session, filing, written_by_id=manager_id,
                                   review_text=transfer.review_text or "")
            # Every loss has its review: the newest few still with management, one never
            # written, the older ones commented on and closed. Releases add the due ones.
            review = session.scalars(select(AccountReview).where(
                AccountReview.filing_seq == filing.seq)).one()
            for name, value in demo_loss_review(len(world.transfers) - 1 - position, at,
                                                manager_id).items():
                setattr(review, name, value)
    # After the transfers: an incident is logged against the rep who held the account when it
    # was seen, which the filings tell.
    import_crm_file(session, admin, ImportKind.INCIDENTS, files, now=now)
    return {user.username: user for user in session.scalars(select(User))}


# --- the CRM export: the planned world as the files a CRM would hand over -------------------

CRM_ZONE_NAME = Defaults.TIMEZONE  # the zone of the dates in the CRM files
CRM_ZONE = ZoneInfo(CRM_ZONE_NAME)
OWNERSHIP_ZH = {"private": "民营", "state_owned": "国有", "joint_venture": "中外合资",
                "government": "政府机关", "listed": "上市公司"}
SPONSOR_ZH = {"president": "总裁", "ka_vice_president": "KA副总裁",
              "branch_general_manager": "分公司总经理"}
REP_STATUS_ZH = {RepStatus.ACTIVE: "在职", RepStatus.ON_LEAVE: "休假", RepStatus.LEFT: "离职"}
CONTACT_HEADERS_ZH = {"decision_maker": "决策人", "user": "使用人", "purchaser": "采购人",
                      "contact": "接口人"}


@dataclass(frozen=True)
class CrmFile:
    name: str  # the export's name; the file is called crm-<name>-<date of the export>.csv
    data: bytes
    rows: int


def rep_external_id(rep: PlannedRep) -> str:
    return "EMP-" + rep.username.removeprefix("rep").zfill(4)


def csv_bytes(records: list[list[str]], encoding: str) -> bytes:
    """CSV as Excel in China writes it: CRLF line ends, in UTF-8 with BOM or in GB18030."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    return buffer.getvalue().encode(encoding)


def first_load_minutes_ago(world: World) -> int:
    """When the CRM's first load happened: a day before the oldest direct transfer, so that the
    filing register reads in order: the load's crm_import filings, then the transfers."""
    return max(transfer.minutes_ago for transfer in world.transfers) + MINUTES_PER_DAY


def hired_after_first_load(world: World) -> list[PlannedRep]:
    """The reps who joined after the CRM's first load: it lists them (their accounts came with
    it) without a hire date, as a reps import takes no hire date after its day."""
    load = first_load_minutes_ago(world)
    return [rep for rep in world.reps if rep.hired_days_ago * MINUTES_PER_DAY < load]


REPS_HEADER_ZH = ["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"]


def rep_record(rep: PlannedRep, now: datetime, *, with_hire_date: bool = True) -> list[str]:
    hired_on = (now - timedelta(days=rep.hired_days_ago)).date().isoformat()
    return [rep_external_id(rep), rep.username, rep.display_name, rep.branch,
            hired_on if with_hire_date else "", REP_STATUS_ZH[rep.status]]


def roster_update(world: World, now: datetime) -> tuple[datetime, CrmFile]:
    """The reps export of the day the last rep joined: the reps who joined after the first
    load, now with their hire dates; with the moment it is imported."""
    joined = hired_after_first_load(world)
    records = [REPS_HEADER_ZH, *(rep_record(rep, now) for rep in joined)]
    latest = min(rep.hired_days_ago for rep in joined)
    return now - timedelta(days=latest), CrmFile("销售人员", csv_bytes(records, "utf-8-sig"),
                                                 len(joined))


def crm_files(world: World, now: datetime) -> dict[str, CrmFile]:
    """Each import kind's CRM export, mixing encodings and header languages as real ones do."""

    def day(minutes: int) -> str:
        return (now - timedelta(minutes=minutes)).astimezone(CRM_ZONE).date().isoformat()

    external = {rep.username: rep_external_id(rep) for rep in world.reps}
    loaded_with = first_owners(world)
    not_yet_hired = {rep.username for rep in hired_after_first_load(world)}
    reps = [REPS_HEADER_ZH] + [
        rep_record(rep, now, with_hire_date=rep.username not in not_yet_hired)
        for rep in world.reps]
    accounts = [["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售",
                 "老板负责", *CONTACT_HEADERS_ZH.values()]]
    for account in world.accounts:
        names = {role: name for role, name, _, _ in account.contacts}
        accounts.append([
            account.external_id, account.name, account.industry,
            OWNERSHIP_ZH[account.ownership_type], account.branch,
            f"{account.annual_value_yuan:,}",
            external[loaded_with.get(account.external_id, account.owner)] if account.owner else "",
            SPONSOR_ZH.get(account.executive_sponsor or "", ""),
            *(names.get(role, "") for role in CONTACT_HEADERS_ZH)])
    opportunities = [OPPORTUNITY_HEADER]
    for opportunity in world.opportunities:
        final_stage, final_minutes = opportunity.stages[-1]
        opportunities.append([
            opportunity.external_id, opportunity.account, external[opportunity.rep],
            str(opportunity.amount_yuan), final_stage, day(opportunity.stages[0][1]),
            day(final_minutes) if final_stage in ("won", "lost") else "",
            ";".join(f"{stage}:{day(minutes)}" for stage, minutes in opportunity.stages)])
    forecasts = [FORECAST_HEADER] + [
        forecast_record(rep, row) for rep in world.reps for row in forecast_rows(rep, now)]
    incidents = [["Incident ID", "Account ID", "Rep", "Competitor", "Date Seen", "Ad Type",
                  "Page Area", "Evidence URL", "Status", "Explanation"]] + [
        [f"INC-{number:06d}", incident.account, external[incident.rep],
         incident.competitor_site, day(incident.seen_minutes_ago), incident.ad_type,
         PAGE_AREAS[number % 2], f"https://www.{incident.competitor_site}/ad/{number}",
         incident.status, incident.explanation]
        for number, incident in enumerate(world.incidents, start=1)]
    files = {
        ImportKind.REPS: ("销售人员", reps, "utf-8-sig"),
        ImportKind.ACCOUNTS: ("客户", accounts, "gb18030"),
        ImportKind.OPPORTUNITIES: ("opportunities", opportunities, "utf-8-sig"),
        ImportKind.FORECASTS: ("月度预测", forecasts, "gb18030"),
        ImportKind.INCIDENTS: ("incidents", incidents, "utf-8-sig"),
    }
    return {kind: CrmFile(name, csv_bytes(records, encoding), len(records) - 1)
            for kind, (name, records, encoding) in files.items()}


FORECAST_HEADER = ["销售", "月份", "预测金额", "实际金额"]
OPPORTUNITY_HEADER = ["Opportunity ID", "Account ID", "Rep", "Amount", "Stage", "Opened Date",
                      "Closed Date", "Stage History"]


def forecast_record(rep: PlannedRep, row: dict) -> list[str]:
    return [rep.username, f"{row['month']:%Y-%m}", str(row["forecast_yuan"]),
            str(int(row["actual_yuan"]))]


def forecast_files(world: World, now: datetime) -> list[tuple[datetime, CrmFile]]:
    """The monthly forecast exports, oldest first: each month's forecasts and actuals,
    imported on the first of the next month at 09:00 in the CRM's zone (never after now)."""
    by_month: dict[date, list[list[str]]] = defaultdict(list)
    for rep in world.reps:
        for row in forecast_rows(rep, now):
            by_month[row["month"]].append(forecast_record(rep, row))
    files = []
    for month in sorted(by_month):
        following = (month + timedelta(days=32)).replace(day=1)
        imported_at = datetime(following.year, following.month, 1, 9, tzinfo=CRM_ZONE)
        files.append((min(now, imported_at.astimezone(now.tzinfo)), CrmFile(
            "月度预测", csv_bytes([FORECAST_HEADER, *by_month[month]], "gb18030"),
            len(by_month[month]))))
    return files


def import_crm_file(session: Session, admin: User, kind: str, files: dict[str, CrmFile], *,
                    now: datetime, updates: bool = False) -> None:
    """Import one CRM file as the admin; any refused or missing row stops the build. Each row
    adds a record, or with `updates` changes one bidhub has."""
    from bidhub.services.imports import import_file

    file = files[kind]
    filename = f"crm-{file.name}-{now.astimezone(CRM_ZONE):%Y%m%d}.csv"
    result = import_file(session, admin, kind, filename, file.data, valid_rows_only=False,
                         now=now, zone=CRM_ZONE_NAME)
    done, verb = (result.updated, "updated") if updates else (result.added, "added")
    if result.refused or done != file.rows:
        problems = "\n".join(
            f"  row {problem.row}, {problem.column} {problem.value!r}: {problem.reason}"
            for problem in result.problems[:20])
        raise DemoImportFailed(
            f"The demo's {kind} import ({filename}) was {result.status}: "
            f"{done} of {file.rows} rows {verb}, {len(result.problems)} problem(s)"
            + (f":\n{problems}" if problems else "."))


class DemoImportFailed(RuntimeError):
    """A demo CRM file did not import completely; the demo world would be wrong without it."""


DEMO_LOSS_REVIEWS = (
    ("客户换了采购负责人，我三个月没有拜访新负责人，竞争对手趁机拿下了年度合同。",
     "每季度梳理一次决策人、使用人、采购人，人员变动后两周内当面拜访。"),
    ("客户需求增长很快，我名下客户太多，响应慢，客户多次投诉后要求更换销售。",
     "名下客户接近40家时主动申请释放，保证重点客户每月至少拜访一次。"),
    ("续约方案报价偏高，没有及时向管理部申请支持，客户转向了竞争对手。",
     "续约前两个月准备方案，价格有压力时提前和管理部沟通。"),
)
DEMO_LOSS_COMMENTS = ("总结到位，请在下季度客户档案检查中落实。", "同意，已在周会上分享这条经验。")


def demo_loss_review(newest_first: int, at: datetime, manager_id: int) -> dict:
    """A demo loss review by age: the newest never written (overdue), the next two written
    and waiting for management, the rest written and closed with a comment."""
    what, differently = DEMO_LOSS_REVIEWS[newest_first % len(DEMO_LOSS_REVIEWS)]
    if newest_first == 0:
        return {"status": LossReviewStatus.DUE}
    written = {"what_happened": what, "do_differently": differently,
               "submitted_at": at + timedelta(days=3)}
    if newest_first < 3:
        return {"status": LossReviewStatus.SUBMITTED, **written}
    return {"status": LossReviewStatus.CLOSED, **written, "closed_by_id": manager_id,
            "closed_at": at + timedelta(days=5),
            "manager_comment": DEMO_LOSS_COMMENTS[newest_first % len(DEMO_LOSS_COMMENTS)]}


def run_rounds(session: Session, world: World, users: dict[str, User], now: datetime) -> None:
    """Create, fill, publish, bid on and (when closed) score the planned rounds via the services."""
    from bidhub.domain.errors import BidRejected
    from bidhub.services.adjudication import score_closed_round
    from bidhub.services.application_reviews import name_reviewers
    from bidhub.services.bidding import submit_bid
    from bidhub.services.rounds import create_round, publish_round, release_account

    account_ids = dict(session.execute(select(Account.external_id, Account.id)).all())
    manager = users["manager"]
    for planned in world.rounds:
        opens_at = now + timedelta(days=planned.opens_days)
        closes_at = now + timedelta(days=planned.closes_days)
        created_at = min(now, opens_at) - timedelta(hours=2)
        if planned.reviewers:
            with pilot_rules(session, users["admin"], created_at):
                round_ = create_round(session, manager, title=planned.title, branch_id=None,
                                      opens_at=opens_at, closes_at=closes_at, now=created_at)
        else:
            round_ = create_round(session, manager, title=planned.title, branch_id=None,
                                  opens_at=opens_at, closes_at=closes_at, now=created_at)
        listing_of: dict[str, int] = {}
        for position, release in enumerate(planned.releases):
            listing = release_account(
                session, manager, round_.id, account_id=account_ids[release.account],
                reason=release.reason, note=release.note, review_text=release.review_text,
                now=created_at + timedelta(minutes=3 + position))
            listing_of[release.account] = listing.id
        if not planned.publish:
            continue
        if planned.reviewers:
            name_reviewers(session, manager, round_.id,
                           [users[username].id for username in planned.reviewers],
                           now=created_at + timedelta(minutes=30))
        round_ = publish_round(session, manager, round_.id, expected_version=round_.version,
                               now=created_at + timedelta(minutes=90))
        for bid in planned.bids:
            try:
                submit_bid(session, users[bid.rep], listing_of[bid.account],
                           account_plan=bid.account_plan,
                           committed_revenue_yuan=bid.committed_revenue_yuan,
                           visit_plan=bid.visit_plan, submission_key=None,
                           now=opens_at + timedelta(minutes=bid.minutes_after_opening))
            except BidRejected:
                continue  # over capacity, in cooldown, on leave...: refused, as in real life
        if closes_at <= now:
            score_closed_round(session, round_.id, closes_at + timedelta(minutes=5))
        if planned.reviewers:
            reviewed_by = (planned.reviewers if planned.reviewed_by is None
                           else planned.reviewed_by)
            review_applications(session, users, round_.id, reviewed_by,
                                closes_at + planned.review_after, planned.review_after,
                                {rep.username: rep.skill for rep in world.reps})
            if planned.reviewed_by is None:
                # The last review completed the minimum and scored it; this only makes sure.
                score_closed_round(session, round_.id, closes_at + timedelta(
                    days=len(planned.reviewers), hours=4))
        if planned.decided_by is not None:
            settle_round(session, users, round_.id, planned, listing_of,
                         decided_at=closes_at + timedelta(days=3 if planned.reviewers else 1))
        if planned.announced_days is not None:
            announce_with_an_appeal(session, manager, round_.id,
                                    now + timedelta(days=planned.announced_days), now)


# The blind-review pilot (匿名评审试点): today's rules with a review step whose mean score is
# one more factor. Adopted for 第9期 and for the round in review alone; each time the rules
# before it are adopted again right after.
REVIEW_PILOT_NAME = "blind-review-pilot"
REVIEW_PILOT_SECTION = """
[review]
min_reviews_per_bid = 2        # both named managers review every application
show_reviewer_names = false    # reps read the scores and notes, not who wrote them

[[review.criteria]]
name = "plan_quality"
label = "经营计划质量"
min = 1
max = 5

[[review.criteria]]
name = "commitment_feasibility"
label = "承诺可行性"
min = 1
max = 5

[[factors]]
metric = "plan_review"         # the mean of the reviewers' points
weight = 0.25
normaliser = "minmax"
"""


@contextmanager
def pilot_rules(session: Session, admin: User, at: datetime) -> Iterator[None]:
    """Within the block, new rounds take the review pilot's rules; then the rules before."""
    from bidhub.services.rule_sets import active_rule_set, adopt_rules

    before = active_rule_set(session)
    text = re.sub(r'(?m)^name = .*$', f'name = "{REVIEW_PILOT_NAME}"', before.text, count=1)
    pilot = adopt_rules(session, admin, text + REVIEW_PILOT_SECTION,
                        "匿名评审试点：本期竞标申请由两位管理部经理匿名评审，评审均分计入得分。",
                        expected_active_id=before.id, now=at - timedelta(hours=1))
    yield
    adopt_rules(session, admin, before.text, "试点只用于本期，之后各期仍按原规则。",
                expected_active_id=pilot.id, now=at + timedelta(minutes=5))


# Reviewers' notes by how well the application scored (low, middling, high mean points).
REVIEW_NOTES = (
    ("计划内容较泛，没有体现对该客户业务的了解，承诺金额缺少依据。",
     "拜访计划只有电话沟通，缺少上门拜访和方案环节，承诺收入难以兑现。"),
    ("计划方向正确，但拜访安排偏笼统，建议补充首月与决策人见面的具体时间。",
     "承诺收入略高于客户去年的投入，需要说明增量从哪里来；整体思路清楚。"),
    ("计划对客户的招聘节奏把握准确，拜访安排具体到周，承诺金额与客户的实际需求相符，可信。",
     "方案结合了同行业的成功案例，决策人、使用人和采购人都有对应的拜访安排，执行性强。"),
)


def review_applications(session: Session, users: dict[str, User], round_id: int,
                        reviewers: tuple[str, ...], first_at: datetime, turn: timedelta,
                        skills: dict[str, float]) -> None:
    """Each of `reviewers` reviews every application of the round in its blind review, the
    first from `first_at`, the next a `turn` later; when they are all the named reviewers, the
    last review completes the minimum and scores the round.

    A reviewer sees codes, not bidders; the demo, standing in for their judgement, reads the
    bidder's skill behind each code, so that better reps tend to write better plans."""
    from bidhub.models import Bid, Round
    from bidhub.services.application_reviews import review_queue, submit_review
    from bidhub.services.rule_sets import parsed

    criteria = parsed(session.get(Round, round_id).rule_set).review.criteria
    for position, username in enumerate(reviewers):
        reviewer = users[username]
        for minute, item in enumerate(review_queue(session, reviewer, round_id)):
            bid = session.scalars(select(Bid).where(Bid.review_code == item.code)).one()
            rng = random.Random(f"{SEED}:review:{username}:{bid.rep.username}:{bid.listing_id}")
            base = 1.5 + (skills.get(bid.rep.username, 0.6) - 0.5) * 7
            scores = {criterion.name: min(criterion.max_points, max(
                criterion.min_points, round(base + rng.gauss(0, 0.7))))
                for criterion in criteria}
            mean = sum(scores.values()) / len(scores)
            notes = REVIEW_NOTES[0 if mean < 2.5 else 1 if mean < 3.75 else 2]
            submit_review(session, reviewer, round_id, item.code, scores, rng.choice(notes),
                          now=first_at + position * turn + timedelta(minutes=11 * minute))


def settle_round(session: Session, users: dict[str, User], round_id: int,
                 planned: PlannedRound, listing_of: dict[str, int], *,
                 decided_at: datetime) -> None:
    """Decide every listing of a scored past round as planned, announce the results and let
    them take effect when the window ends; the released reps' loss reviews are written and
    closed."""
    from bidhub.domain.errors import InvalidRequest
    from bidhub.models import Round
    from bidhub.services.adjudication import decide_listing, publish_results, review_round
    from bidhub.services.appeals import apply_round

    manager = users[planned.decided_by]
    reviews = list(review_round(session, session.get(Round, round_id)).values())
    planned_for = departures(reviews, planned.decisions)
    for minute, review in enumerate(reviews):
        at = decided_at + timedelta(minutes=7 * minute)
        planned_decision = planned_for.get(review.listing.id)
        kind, bid_id, reason = DecisionKind.ACCEPTED, None, ""
        if planned_decision is not None:
            kind, reason = planned_decision.kind, planned_decision.reason
            if kind == DecisionKind.OVERRIDDEN:
                bid_id = runner_up(review).id
        elif review.proposed is None:
            if review.has_no_bids:
                continue  # publishing records the no-bid default
            kind, reason = DecisionKind.NO_AWARD, NOT_ELIGIBLE_REASON
        try:
            decide_listing(session, manager, review.listing.id, kind=kind, bid_id=bid_id,
                           reason=reason, now=at)
        except InvalidRequest:  # the runner-up has no room: the ranking stands
            decide_listing(session, manager, review.listing.id, kind=DecisionKind.ACCEPTED,
                           bid_id=None, reason="", now=at)
    round_ = session.get(Round, round_id)
    publish_results(session, manager, round_id, expected_version=round_.version,
                    now=decided_at + timedelta(hours=2))
    write_release_reviews(session, users, planned, listing_of, decided_at)
    round_ = session.get(Round, round_id)
    apply_round(session, round_id, round_.standstill_ends_at + timedelta(minutes=1))


def runner_up(review):
    """The best-ranked eligible bid after the proposed winner, or None."""
    return next((bid for bid in review.eligible if bid is not review.proposed), None)


def departures(reviews: list, decisions: list[PlannedDecision]) -> dict[int, PlannedDecision]:
    """Listing id -> the planned departure from the ranking it gets: each goes to the first
    listing from its position on (then from the start) where it can be taken, that is, one
    with a proposed winner, and for an override an eligible runner-up too."""
    chosen: dict[int, PlannedDecision] = {}
    for decision in decisions:
        fits = [(position, review.listing.id) for position, review in enumerate(reviews)
                if review.proposed is not None and review.listing.id not in chosen
                and (decision.kind == DecisionKind.NO_AWARD or runner_up(review) is not None)]
        after = [fit for fit in fits if fit[0] >= decision.position]
        if fits:
            chosen[(after or fits)[0][1]] = decision
    return chosen


def write_release_reviews(session: Session, users: dict[str, User], planned: PlannedRound,
                          listing_of: dict[str, int], decided_at: datetime) -> None:
    """The reps whose accounts a past round released wrote their reviews, and management
    closed them with a comment."""
    from bidhub.services.loss_reviews import close_review, released_reviews
    from bidhub.services.loss_reviews import submit_review as submit_loss_review

    released = released_reviews(session, [listing_of[release.account]
                                          for release in planned.releases])
    for position, review in enumerate(released.values()):
        what, differently = DEMO_LOSS_REVIEWS[position % len(DEMO_LOSS_REVIEWS)]
        rep = session.get(User, review.rep_id)
        review = submit_loss_review(session, rep, review.id, what_happened=what,
                                    do_differently=differently,
                                    expected_version=review.version,
                                    now=decided_at - timedelta(days=2))
        close_review(session, users[planned.decided_by], review.id,
                     comment=DEMO_LOSS_COMMENTS[position % len(DEMO_LOSS_COMMENTS)],
                     expected_version=review.version, now=decided_at + timedelta(days=1))


# An appeal in the demo's standstill window, as a rep who lost would write it.
DEMO_APPEAL_GROUND = ("我对该客户的跟进已有半年，去年签约的两个分公司项目都由我负责，"
                      "承诺收入也高于中标人。请管理部复核评分中“客户匹配度”一项。")


def announce_with_an_appeal(session: Session, manager: User, round_id: int,
                            announced_at: datetime, now: datetime) -> None:
    """Decide every listing as ranked, announce the results into the standstill window, and
    have one losing bidder appeal, so that management finds an appeal waiting."""
    from bidhub.models import Bid, BidScore, DecisionKind, Listing, Round
    from bidhub.services.adjudication import decide_listing, publish_results, review_round
    from bidhub.services.appeals import file_appeal

    round_ = session.get(Round, round_id)
    for review in review_round(session, round_).values():
        if review.proposed is not None:
            decide_listing(session, manager, review.listing.id, kind=DecisionKind.ACCEPTED,
                           bid_id=None, reason="", now=announced_at - timedelta(hours=2))
        elif not review.has_no_bids:
            decide_listing(session, manager, review.listing.id, kind=DecisionKind.NO_AWARD,
                           bid_id=None, reason="没有符合竞标资格的申请，本期不予分配。",
                           now=announced_at - timedelta(hours=2))
    round_ = session.get(Round, round_id)
    publish_results(session, manager, round_id, expected_version=round_.version,
                    now=announced_at)
    losers = session.scalars(
        select(Bid).join(Bid.score).join(Bid.listing)
        .where(Listing.round_id == round_id, BidScore.is_proposed_winner.is_(False),
               BidScore.rank.is_not(None))
        .order_by(BidScore.rank, Bid.id)).all()
    # Someone without a demo login appeals, so the demo's reps can still file their own.
    appellant = next((bid for bid in losers if bid.rep.username not in LOGIN_ORDER),
                     losers[0] if losers else None)
    if appellant is not None:
        file_appeal(session, appellant.rep, appellant.listing_id, ground=DEMO_APPEAL_GROUND,
                    now=now - timedelta(hours=3))
