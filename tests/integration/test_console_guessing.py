"""Password guessing costs the guesser, not the console: failed sign-ins are audited with the user
name cut short, a name or address that keeps failing is locked for a while (429, no hash run),
and password checks beyond the few that may run at once are told to come back (429)."""

import base64
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from support.console import OPERATOR, VIEWER, basic, csrf_token, in_process, recorded_console_log
from worker.console.identity import Identity
from worker.console.users import Users


def _form_sign_in(client: TestClient, name: str, password: str) -> int:
    """POST the login form once; the status."""
    token = csrf_token(client, "/login")
    return client.post(
        "/login", data={"username": name, "password": password, "csrf_token": token}
    ).status_code


def test_failed_sign_ins_are_audited_by_form_and_by_basic(tmp_path: Path) -> None:
    """A wrong password on the form and over HTTP Basic each leave an audit row naming the user and address."""
    client, records = in_process(tmp_path, [])
    assert _form_sign_in(client, OPERATOR[0], "not-the-password") == 401
    assert client.get("/api/groups", headers=basic((VIEWER[0], "not-the-password"))).status_code == 401
    rows = [entry for entry in records.audit_log() if entry.action == "sign_in_refused"]
    assert sorted(entry.actor for entry in rows) == sorted([OPERATOR[0], VIEWER[0]])
    assert {entry.selection for entry in rows} == {"from testclient by form", "from testclient by basic"}
    assert all(entry.result == "wrong user name or password" for entry in rows)


def test_a_huge_user_name_is_cut_in_the_log_and_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-megabyte user name, refused, reaches the log line and the audit row cut to a bounded length."""
    client, records = in_process(tmp_path, [])
    name = "m" * 500_000  # the form parser refuses a field of 1 MiB (400) before we see it
    recorded = recorded_console_log(monkeypatch)
    assert _form_sign_in(client, name, "not-the-password") == 401
    authorization = "Basic " + base64.b64encode(f"{name}:nope".encode()).decode()
    assert client.get("/api/groups", headers={"Authorization": authorization}).status_code == 401
    refused = [line for line in recorded.lines if line["event"] == "console.sign_in_refused"]
    assert all(len(line["user"]) < 64 + 40 for line in refused), [len(x["user"]) for x in refused]
    assert len(refused) == 2
    assert all(line["user"].startswith("m" * 64) for line in refused)
    assert all(len(entry.actor) < 64 + 40 for entry in records.audit_log())


def test_a_name_that_keeps_failing_is_locked_then_the_right_password_works_again(tmp_path: Path) -> None:
    """After the free failures a name (and its address) is locked: 429 with Retry-After, even for the
    right password, audited as a lock; once the lock passes the right password signs in."""
    client, records = in_process(tmp_path, [])
    wrong = basic((VIEWER[0], "not-the-password"))
    statuses = [client.get("/api/groups", headers=wrong).status_code for _ in range(6)]
    assert statuses == [401] * 6
    locked = client.get("/api/groups", headers=basic(VIEWER))
    assert locked.status_code == 429 and "too many failed sign-ins" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) >= 1
    assert _form_sign_in(client, OPERATOR[0], OPERATOR[1]) == 429  # the address is locked too
    assert [e.action for e in records.audit_log()].count("sign_in_locked") == 1
    assert [e.action for e in records.audit_log()].count("sign_in_refused") == 6
    time.sleep(float(locked.headers["retry-after"]) + 0.2)
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200


def test_the_lock_grows_with_each_failure_up_to_the_lockout(tmp_path: Path) -> None:
    """Each failure past the free ones locks for twice as long, never longer than the lockout."""
    client, records = in_process(tmp_path, [], console_sign_in_free_failures=1, console_lockout_seconds=2)
    wrong = basic((VIEWER[0], "not-the-password"))
    assert client.get("/api/groups", headers=wrong).status_code == 401  # the free one
    waits = []
    for _ in range(4):
        assert client.get("/api/groups", headers=wrong).status_code == 401
        refused = client.get("/api/groups", headers=wrong)
        assert refused.status_code == 429
        waits.append(int(refused.headers["retry-after"]))
        time.sleep(int(refused.headers["retry-after"]) + 0.1)
    assert all(1 <= wait <= 2 for wait in waits), waits  # never longer than the lockout
    assert [e.result for e in records.audit_log() if e.action == "sign_in_locked"] == [
        "locked for 2 s",
        "locked for 2 s",
        "locked for 2 s",
        "locked for 1 s",
    ]


class _HeldHash:
    """Stands in front of the password hash: a check that reaches it waits until released, so a
    test decides how long the one slot stays taken instead of the machine's argon2 speed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered, self.released = threading.Event(), threading.Event()
        verify = Users.verify

        def held(users: Users, name: str, password: str) -> Identity | None:
            self.entered.set()
            assert self.released.wait(30), "the test never released the hash"
            return verify(users, name, password)

        monkeypatch.setattr(Users, "verify", held)

    def hold_again(self) -> None:
        self.entered.clear()
        self.released.clear()


def test_password_checks_beyond_those_allowed_at_once_wait_their_turn_then_get_429(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one check at a time: a check that finds the slot taken waits for it (401 once its turn
    comes); checks that find it taken for longer than the wait are told to come back (429, Retry-After 1)."""
    client, _ = in_process(tmp_path, [], console_password_checks=1, console_sign_in_free_failures=1000)
    hashing = _HeldHash(monkeypatch)
    statuses: dict[int, int] = {}
    retry_after: list[str] = []

    def guess(number: int) -> None:
        response = client.get("/api/groups", headers=basic((f"user{number}", "not-the-password")))
        statuses[number] = response.status_code
        if response.status_code == 429:
            assert "too many sign-ins at once" in response.json()["detail"]
            retry_after.append(response.headers["retry-after"])

    def started(numbers: range) -> list[threading.Thread]:
        threads = [threading.Thread(target=guess, args=(n,)) for n in numbers]
        for thread in threads:
            thread.start()
        return threads

    with client:
        holder = started(range(1))
        assert hashing.entered.wait(10)
        waiter = started(range(1, 2))
        time.sleep(0.3)  # well inside the one-second wait
        hashing.released.set()
        for thread in holder + waiter:
            thread.join(30)
        assert statuses == {0: 401, 1: 401}  # the second waited its turn

        hashing.hold_again()
        holder = started(range(2, 3))
        assert hashing.entered.wait(10)
        turned_away = started(range(3, 14))
        for thread in turned_away:
            thread.join(30)
        hashing.released.set()
        holder[0].join(30)
    assert statuses == {0: 401, 1: 401, 2: 401} | {n: 429 for n in range(3, 14)}, statuses
    assert retry_after == ["1"] * 11
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200
