"""Limits on what people type, defined once: the services enforce them and the forms read them."""

from __future__ import annotations

import re

from bidhub.domain.rules import MAX_ABS_WEIGHT

# The one-time key a form carries so that sending it twice does one thing (a bid, a new round):
# secrets.token_urlsafe, at most the column's width.
SUBMISSION_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")

# A bid's account plan and visit plan: long enough to say something the manager can judge.
MIN_PLAN_LENGTH = 20
MAX_PLAN_LENGTH = 10_000
# A bid's committed 12-month revenue is a promise to bring the account business: nothing
# (0) promises nothing, and commitment_kept leaves such a promise out rather than hold the rep
# to it. At most within the INTEGER column the bid is stored in (2**31 - 1 on PostgreSQL).
MIN_REVENUE_YUAN = 1
MAX_REVENUE_YUAN = 2_000_000_000

# The review written when an account leaves its rep, the same whether the account is released
# into a round or transferred directly: both end the rep's hold and feed the same history.
MIN_REVIEW_LENGTH = 20
MAX_REVIEW_LENGTH = 5_000

# The reason recorded with a transfer or a release note in the filing register.
MIN_REASON_LENGTH = 10
MAX_REASON_LENGTH = 5_000

# A rep's explanation of an accountability incident.
MIN_EXPLANATION_LENGTH = 20

# A branch's code is typed in files and commands: as long as the branches import reads it
# (the column's width), so that a branch set up from a file could be set up on the form too.
# Its names fit the table's columns.
MAX_BRANCH_CODE_LENGTH = 32
MAX_BRANCH_NAME_LENGTH = 100

# A person's name and a round's title, as wide as the columns they are stored in.
MAX_DISPLAY_NAME_LENGTH = 100
MAX_ROUND_TITLE_LENGTH = 200

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

# A factor weight's bound is the rule parser's: the settings form cannot offer what it refuses.
MAX_FACTOR_WEIGHT = MAX_ABS_WEIGHT
