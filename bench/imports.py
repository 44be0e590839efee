"""Benchmark: importing 10,000 and 100,000 generated opportunity rows, then the 100,000 again;
and an accounts export with owners and contacts, first load and again.

Run: python bench/imports.py [--sizes 10000 100000] [--accounts 20000] [--keep DIR]
     (BIDHUB_BENCH_POSTGRES_URL=postgresql+psycopg://user:pw@host/db also runs every case on a
     fresh PostgreSQL database created beside that one and dropped afterwards)

Generates opportunity files as a CRM exports them: CSV in UTF-8 with BOM, CRLF line ends,
the Chinese headers 商机编号, 客户编号, 销售, 金额, 阶段, 创建日期, 关闭日期, 阶段历史, a stage history
of one to five changes per row, over 400 reps and 8,000 accounts that are loaded first through
the reps and accounts imports. Each size is imported into a fresh database (SQLite, then
PostgreSQL when configured) and the largest file is then imported again into the same one.

Every import is `bidhub import opportunities FILE --by admin`, the click command run through
Flask's CLI runner in a child process of its own. For each it prints the import's wall time,
rows per second, and the child's peak resident memory while importing (VmHWM, reset just
before the import: the app, the database driver and the file's bytes are included; not
tracemalloc, which would slow the import several times), the counts the command printed, and
the ratio to the targets: 100,000 rows in under 30 s and 512 MiB; importing them again in
under 15 s with 0 rows added or updated. The machine (processor, cores, Python) is printed
first. Exits 1 when a target is missed.

Then an accounts export of --accounts rows (客户编号, 客户名称, 行业, 所有制, 分公司, 年度金额,
所属销售, 决策人, 接口人) for accounts bidhub does not hold yet: each owner is filed as the account's
first owner, so the import writes an account, two contacts and a filing per row. It is
imported into a database prepared as above, then again (0 rows changed). Its rows per second
say how large an accounts file the upload page imports within a request's time limit
(BIDHUB_TIMEOUT, 30 s by default).
Takes about a minute on SQLite on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from memory import peak_kib  # bench/memory.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402

TARGET_ROWS = 100_000
TARGET_SECONDS = 30.0
TARGET_REIMPORT_SECONDS = 15.0
TARGET_MIB = 512
REQUEST_SECONDS = 30.0  # BIDHUB_TIMEOUT's default: an upload imports within one request
REPS = 400
ACCOUNTS = 8_000
BRANCHES = (("BJ", "Beijing", "北京"), ("SH", "Shanghai", "上海"), ("GZ", "Guangzhou", "广州"))
HEADER = ["商机编号", "客户编号", "销售", "金额", "阶段", "创建日期", "关闭日期", "阶段历史"]
FUNNEL = ("potential", "intent", "proposal", "negotiation")
STAGE_LABELS = {"potential": "潜在客户", "intent": "意向客户", "proposal": "方案阶段",
                "negotiation": "商务谈判", "won": "销售实现", "lost": "lost"}
INDUSTRIES = ("互联网", "制造业", "金融", "零售", "医疗", "教育", "物流", "房地产")
OWNERSHIP = ("民营", "国有", "中外合资", "上市公司")
NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
COUNTS = re.compile(r"rows (\d+), added (\d+), updated (\d+), unchanged (\d+), skipped (\d+)")


# --- files ------------------------------------------------------------------------------------

def csv_bytes(records: list[list[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer, lineterminator="\r\n").writerows(records)
    return buffer.getvalue().encode("utf-8-sig")


def rep_id(number: int) -> str:
    return f"EMP-{number:04d}"


def account_id(number: int) -> str:
    return f"KA-{number:06d}"


def reps_file() -> bytes:
    return csv_bytes([["员工编号", "用户名", "姓名", "分公司", "入职日期", "状态"]] + [
        [rep_id(number), f"rep{number:04d}", f"销售{number:04d}", BRANCHES[number % 3][0],
         (date(2018, 1, 1) + timedelta(days=number * 5)).isoformat(), "在职"]
        for number in range(1, REPS + 1)])


def accounts_file() -> bytes:
    rng = random.Random(7)
    return csv_bytes([["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额"]] + [
        [account_id(number), f"客户{number:06d}有限公司", rng.choice(INDUSTRIES),
         rng.choice(OWNERSHIP), BRANCHES[number % 3][0], str(rng.randint(5, 500) * 10_000)]
        for number in range(1, ACCOUNTS + 1)])


def account_export(count: int) -> bytes:
    """An accounts export with owners and contacts, for accounts bidhub does not hold yet."""
    rng = random.Random(13)
    return csv_bytes([["客户编号", "客户名称", "行业", "所有制", "分公司", "年度金额", "所属销售",
                       "决策人", "接口人"]] + [
        [f"KA-N{number:06d}", f"新客户{number:06d}有限责任公司", rng.choice(INDUSTRIES),
         rng.choice(OWNERSHIP), BRANCHES[number % 3][2], str(rng.randint(5, 500) * 10_000),
         rep_id(rng.randint(1, REPS)), f"赵总{number}", f"李专员{number}"]
        for number in range(1, count + 1)])


def opportunity_rows(count: int, seed: int = 11) -> list[list[str]]:
    """`count` opportunities with a stage history each, dated over the three years before NOW."""
    rng = random.Random(seed)
    first_day = (NOW - timedelta(days=3 * 365)).date()
    rows = [HEADER]
    for number in range(1, count + 1):
        account = rng.randint(1, ACCOUNTS)
        rep = (account * 7919) % REPS + 1  # an account's opportunities stay with one rep
        opened = first_day + timedelta(days=rng.randint(0, 3 * 365 - 120))
        reached = rng.randint(1, len(FUNNEL))
        stages = list(FUNNEL[:reached])
        ending = rng.random()
        if ending < 0.35:
            stages.append("won")
        elif ending < 0.6:
            stages.append("lost")
        day, history = opened, []
        for stage in stages:
            history.append(f"{stage}:{day.isoformat()}")
            day += timedelta(days=rng.randint(3, 25))
        final = stages[-1]
        closed = history[-1].split(":")[1] if final in ("won", "lost") else ""
        amount = rng.randint(2, 300) * 5_000
        rows.append([f"OPP-{number:07d}", account_id(account), rep_id(rep),
                     f"{amount:,}" if number % 3 == 0 else str(amount), STAGE_LABELS[final],
                     opened.isoformat(), closed, ";".join(history)])
    return rows


def opportunities_file(count: int) -> bytes:
    return csv_bytes(opportunity_rows(count))


# --- databases --------------------------------------------------------------------------------

def app_config(url: str, folder: Path) -> dict:
    return {"DATABASE_URL": url, "SECRET_KEY": "bench", "LEDGER_KEY": "bench",
            "LEDGER_CHECKPOINT_FILE": str(folder / "ledger-checkpoints.jsonl"),
            "IMPORT_UPLOAD_FOLDER": str(folder / "uploads"), "SCHEDULER_ENABLED": False,
            "CLOCK": lambda: NOW}


def prepare_database(url: str, folder: Path) -> None:
    """A migrated database with the default rules, an admin, branches, reps and accounts."""
    from bidhub import create_app
    from bidhub.cli import init_database
    from bidhub.db import engine_of, get_session
    from bidhub.models import Branch, Role, User
    from bidhub.services.imports import import_file
    from bidhub.services.users import new_session_token

    app = create_app(app_config(url, folder))
    with app.app_context():
        init_database(app)
        session = get_session()
        admin = User(username="admin", display_name="Admin", password_hash="-", role=Role.ADMIN,
                     is_active=True, status="active", session_token=new_session_token(),
                     failed_login_count=0, created_at=NOW)
        session.add(admin)
        session.add_all([Branch(code=code, name=name, name_zh=name_zh)
                         for code, name, name_zh in BRANCHES])
        session.commit()
        for kind, data in (("reps", reps_file()), ("accounts", accounts_file())):
            result = import_file(session, admin, kind, f"{kind}.csv", data,
                                 valid_rows_only=False, now=NOW)
            if result.refused:
                raise SystemExit(f"setting up: the {kind} file was refused: {result.problems[:3]}")
        session.close()
        engine_of(app).dispose()


def import_in_child(url: str, folder: Path, path: Path, kind: str = "opportunities") -> dict:
    """(In the child) `bidhub import KIND PATH --by admin`: its time, peak, counts."""
    from bidhub import create_app

    app = create_app(app_config(url, folder))
    runner = app.test_cli_runner()
    # The peak so far is the app's start-up; Linux lets a process reset its own.
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")
    baseline = peak_kib()
    cpu = time.process_time()
    started = time.perf_counter()
    result = runner.invoke(args=["import", kind, str(path), "--by", "admin"])
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    found = COUNTS.search(result.output or "")
    if result.exit_code != 0 or found is None:
        return {"error": (result.output or str(result.exception))[-2_000:]}
    rows, added, updated, unchanged, skipped = map(int, found.groups())
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_kib": peak_kib(), "baseline_kib": baseline, "rows": rows,
            "added": added, "updated": updated, "unchanged": unchanged, "skipped": skipped}


def run_import(url: str, folder: Path, path: Path, kind: str = "opportunities") -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", url, str(folder), str(path), kind],
        capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        return {"error": completed.stderr.strip()[-2_000:] or "exit code"}
    return json.loads(completed.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def fresh_postgres(url: str, name: str):
    """A new database beside the one `url` names, dropped afterwards."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    server = make_url(url)
    engine = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextlib.contextmanager
def fresh_database(backend: str, folder: Path, label: str):
    if backend == "sqlite":
        path = folder / f"{label}.sqlite3"
        yield f"sqlite:///{path}"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with fresh_postgres(os.environ["BIDHUB_BENCH_POSTGRES_URL"],
                        f"bidhub_bench_{os.getpid()}_{label}") as url:
        yield url


# --- the report -------------------------------------------------------------------------------

def line(backend: str, what: str, outcome: dict) -> str:
    if "error" in outcome:
        return f"{backend:<10} {what:<22} FAILED: {outcome['error']}"
    changed = outcome["added"] + outcome["updated"]
    return (f"{backend:<10} {what:<22} {outcome['rows']:>8,} {outcome['seconds']:>8.2f} "
            f"{outcome['cpu_seconds']:>8.2f} {outcome['rows'] / outcome['seconds']:>9,.0f} {outcome['peak_kib'] / 1024:>9.0f} "
            f"{outcome['added']:>8,} {outcome['updated']:>8,} {outcome['unchanged']:>9,} "
            f"{changed:>8,}")


def verdicts(backend: str, first: dict, again: dict) -> tuple[list[str], bool]:
    """The ratios to the targets for the largest file; whether every target is met."""
    if "error" in first or "error" in again:
        return [f"{backend}: an import failed"], False
    scale = TARGET_ROWS / first["rows"]
    seconds = first["seconds"] * scale
    reimport = again["seconds"] * scale
    peak = first["peak_kib"] / 1024
    changed = again["added"] + again["updated"]
    lines = [
        f"{backend}: import {seconds:.1f} s per 100,000 rows = {seconds / TARGET_SECONDS:.2f} of "
        f"the {TARGET_SECONDS:g} s target; peak {peak:.0f} MiB = {peak / TARGET_MIB:.2f} of "
        f"{TARGET_MIB} MiB",
        f"{backend}: import again {reimport:.1f} s per 100,000 rows = "
        f"{reimport / TARGET_REIMPORT_SECONDS:.2f} of the {TARGET_REIMPORT_SECONDS:g} s target; "
        f"{changed} rows changed (target 0)"]
    met = (seconds < TARGET_SECONDS and reimport < TARGET_REIMPORT_SECONDS
           and peak < TARGET_MIB and changed == 0 and first["added"] == first["rows"])
    return lines, met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, TARGET_ROWS])
    parser.add_argument("--keep", type=Path, help="write the files and databases here")
    parser.add_argument("--accounts", type=int, default=20_000,
                        help="rows of the accounts export (0: none)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        url, folder, path, kind = arguments.child
        print(json.dumps(import_in_child(url, Path(folder), Path(path), kind)))
        return 0
    print(machine.describe(), flush=True)
    started = time.perf_counter()
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="bidhub-imports-"))
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for size in arguments.sizes:
        path = folder / f"opportunities-{size}.csv"
        path.write_bytes(opportunities_file(size))
        files[size] = path
        print(f"{path.name}: {size:,} rows, {path.stat().st_size / 1024 / 1024:.1f} MiB")
    accounts_path = folder / f"accounts-{arguments.accounts}.csv"
    if arguments.accounts:
        accounts_path.write_bytes(account_export(arguments.accounts))
        print(f"{accounts_path.name}: {arguments.accounts:,} rows, "
              f"{accounts_path.stat().st_size / 1024 / 1024:.1f} MiB")
    backends = ["sqlite"] + (["postgresql"] if os.environ.get("BIDHUB_BENCH_POSTGRES_URL")
                             else [])
    print(f"\n{'database':<10} {'import':<22} {'rows':>8} {'seconds':>8} {'cpu s':>8} {'rows/s':>9} "
          f"{'peak MiB':>9} {'added':>8} {'updated':>8} {'unchanged':>9} {'changed':>8}")
    summary, all_met = [], True
    for backend in backends:
        for size, path in files.items():
            with fresh_database(backend, folder, f"{size}") as url:
                prepare_database(url, folder)
                first = run_import(url, folder, path)
                print(line(backend, f"{size:,} rows", first))
                if size != max(files):
                    continue
                again = run_import(url, folder, path)
                print(line(backend, f"{size:,} rows again", again))
                lines, met = verdicts(backend, first, again)
                summary += lines
                all_met = all_met and met
        if arguments.accounts:
            with fresh_database(backend, folder, "accounts") as url:
                prepare_database(url, folder)
                first = run_import(url, folder, accounts_path, "accounts")
                print(line(backend, f"{arguments.accounts:,} accounts", first))
                again = run_import(url, folder, accounts_path, "accounts")
                print(line(backend, f"{arguments.accounts:,} accounts again", again))
                all_met = all_met and "error" not in first and "error" not in again
                if "error" not in first:
                    rate = first["rows"] / first["seconds"]
                    summary.append(
                        f"{backend}: accounts export {rate:,.0f} rows/s: about "
                        f"{rate * REQUEST_SECONDS:,.0f} rows within the upload page's "
                        f"{REQUEST_SECONDS:g} s request limit")
    print("\nseconds: wall time of the command; cpu s: the child's own CPU time in it (the "
          "database\nserver's not included), steadier than wall time on a busy machine. "
          "Peak MiB: the child's\npeak resident memory (VmHWM) from just before the import, "
          "the app, the driver and the\nfile's bytes included. changed = added + updated.")
    print("\n" + "\n".join(summary))
    print(f"\nTargets {'met' if all_met else 'NOT met'}. Done in "
          f"{time.perf_counter() - started:.0f} s.")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
