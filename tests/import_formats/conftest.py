"""What the tests of each file format share: the samples' rows, branches, an import."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from bidhub.services.imports import import_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def sample_records(kind: str) -> list[list[str]]:
    """A sample CSV's rows (the column names first), to write in another format."""
    return list(csv.reader(io.StringIO((SAMPLES / f"{kind}.csv").read_text("utf-8-sig"))))


@pytest.fixture
def branches(make_branch):
    return {code: make_branch(code, name)
            for code, name in (("BJ", "Beijing"), ("SH", "Shanghai"), ("GZ", "Guangzhou"))}


@pytest.fixture
def run_import(session, make_admin, clock):
    admin = make_admin()

    def run(kind: str, data: bytes, filename: str):
        return import_file(session, admin, kind, filename, data, valid_rows_only=False,
                           now=clock())

    return run
