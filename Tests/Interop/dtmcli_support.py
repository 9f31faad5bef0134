"""What the dtmcli tests (test_dtmcli_saga.py, _tcc.py, _msg.py) share: the business body, how long to watch for late
calls, gids, and the shapes their assertions compare."""

import time
import uuid

AMOUNT = {"amount": 30}
# How long to keep watching after a transaction reached a final state, to catch duplicate or late branch calls
# (the server is started with TRANS_CRON_INTERVAL=1).
SETTLE_SECONDS = 1.5
# What a business service answers to make a step fail (dtm's "FAILURE" in the body).
INSUFFICIENT = {"error": "reason:insufficient. FAILURE"}


def new_gid(mode, tag):
    """A gid naming the test: py-<mode>-<tag>-<random>."""
    return "py-%s-%s-%s" % (mode, tag, uuid.uuid4().hex[:16])


def call_summary(calls):
    """(name, branch_id, op) of each branch call, in order."""
    return [(c.name, c.query.get("branch_id"), c.query.get("op")) for c in calls]


def branch_rows(query_answer):
    """(branch_id, op, status) of each row of a `query` answer."""
    return [(b.get("branch_id"), b.get("op"), b.get("status")) for b in query_answer["branches"]]


def settle_and_get_calls(busi, gid):
    """The branch calls of `gid` once late or duplicate ones would have arrived."""
    time.sleep(SETTLE_SECONDS)
    return busi.calls(gid)
