"""Progressive delivery in the engine: a bake that keeps checking after the first pass, a
baseline of what already fails before a deploy, and checks that do not judge because of it.
Each request runs through the shipped engine in a bare interpreter, as on a host."""

from __future__ import annotations

import time
from pathlib import Path

from test_remote import run_on_this_machine

from smokegate.engine import protocol


def status_spec(path: Path) -> dict:
    return {"checks": [{"name": "service up", "env": {"name": "UP", "file": str(path)}}]}


def test_a_bake_catches_a_service_that_dies_after_its_first_pass(tmp_path: Path):
    status = tmp_path / "status.env"
    status.write_text("UP=yes\n")
    # The "service" passes its first check, then dies 1.5 s later.
    dies = "(sleep 1.5; echo UP= > %s) >/dev/null 2>&1 &" % status
    steps = [
        protocol.restart(dies, when=None),
        protocol.smoke(status_spec(status)),
        protocol.bake(status_spec(status), seconds=4, interval=0.5),
        protocol.good("never"),
    ]
    started = time.monotonic()
    answer = protocol.Answer(run_on_this_machine(protocol.request(steps, host="web1")))
    elapsed = time.monotonic() - started
    assert not answer.ok and elapsed < 3.5  # stopped at the round that failed, not at 4 s
    bake = answer.step(protocol.BAKE)
    assert [round_["ok"] for round_ in bake["rounds"]][:2] == [True, True]
    assert bake["rounds"][-1] == {
        "at": bake["rounds"][-1]["at"],
        "ok": False,
        "failing": ["service up"],
    }
    assert 1.4 <= bake["rounds"][-1]["at"] <= 2.6
    assert answer.step(protocol.GOOD) is None  # a failed bake stops the request
    assert answer.error.startswith("bake failed ")
    assert "(round %d): service up: UP is set but empty" % len(bake["rounds"]) in answer.error
    assert answer.progress().endswith("smoke ok (1/1 passed), bake FAILED")


def test_a_bake_that_passes_records_every_round_until_its_end(tmp_path: Path):
    status = tmp_path / "status.env"
    status.write_text("UP=yes\n")
    steps = [
        protocol.smoke(status_spec(status)),
        protocol.bake(status_spec(status), seconds=1.2, interval=0.5),
    ]
    answer = protocol.Answer(run_on_this_machine(protocol.request(steps)))
    assert answer.ok, answer.data
    rounds = answer.step(protocol.BAKE)["rounds"]
    assert [round_["ok"] for round_ in rounds] == [True, True, True]
    assert [round_["at"] for round_ in rounds][-1] >= 1.2
    assert answer.progress() == "smoke ok (1/1 passed), baked 3 rounds over %g s" % rounds[-1]["at"]


def test_a_baseline_names_what_already_fails_and_those_checks_do_not_judge(tmp_path: Path):
    root = tmp_path / "app"
    (root / "releases" / "v1").mkdir(parents=True)
    (root / "current").symlink_to("releases/v1")
    broken = {"name": "payments url", "env": {"name": "PAYMENTS_URL", "file": str(tmp_path / "x")}}
    spec = {"checks": [broken, {"name": "tmp", "disk": {"path": str(tmp_path), "min_free": 1}}]}
    answer = protocol.Answer(
        run_on_this_machine(protocol.request([protocol.baseline(spec)], root=str(root)))
    )
    assert answer.ok  # a baseline reports; what it means is the front end's to decide
    found = answer.step(protocol.BASELINE)
    assert found["preexisting"] == ["payments url"]
    judged = protocol.Answer(
        run_on_this_machine(protocol.request([protocol.smoke(spec, preexisting=["payments url"])]))
    )
    assert judged.ok
    (result, _tmp) = judged.report["results"]
    assert result["status"] == "fail" and result["preexisting"] is True
    # Without a current release there is nothing to compare with.
    empty = protocol.Answer(
        run_on_this_machine(protocol.request([protocol.baseline(spec)], root=str(tmp_path / "new")))
    )
    assert empty.step(protocol.BASELINE)["skipped"] == "no current release"


def test_a_preexisting_check_is_shown_as_such_in_every_format(tmp_path: Path):
    from smokegate.engine import report

    result = {
        "name": "payments url",
        "type": "env",
        "severity": "critical",
        "status": "fail",
        "message": "PAYMENTS_URL is not set",
        "duration_ms": 1.0,
        "attempts": 1,
        "preexisting": True,
    }
    host = {
        "host": "web2",
        "ok": True,
        "duration_ms": 1.0,
        "summary": {"total": 1, "passed": 0, "failed": 1, "errors": 0, "timeouts": 0, "skipped": 0},
        "results": [result],
    }
    assert protocol.host_ok(host)
    assert "PREEXISTING  payments url" in report.render("human", [host])
    assert 'skipped message="preexisting: PAYMENTS_URL is not set"' in report.render(
        "junit", [host]
    )
    assert "ok 1 - web2: payments url # SKIP preexisting: PAYMENTS_URL is not set" in report.render(
        "tap", [host]
    )
    assert 'smokegate_check_preexisting{host="web2",name="payments url"' in report.render(
        "prometheus", [host]
    )
    assert '"preexisting": true' in report.render("json", [host])


def test_the_failure_budget_counts_hosts_and_percentages():
    assert protocol.max_fail("0", 8) == 0
    assert protocol.max_fail("2", 8) == 2
    assert protocol.max_fail("25%", 8) == 2
    assert protocol.max_fail("30%", 3) == 0
    for bad in ("-1", "x", "101%", "1.5"):
        try:
            protocol.max_fail(bad, 8)
        except ValueError as exc:
            assert "is not a host count" in str(exc)
        else:
            raise AssertionError(bad)
