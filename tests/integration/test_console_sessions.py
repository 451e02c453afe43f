"""Console sessions end when they should: at sign-out, when the user's password or role changes
or they are removed (and added again), after the idle timeout; and a users file that goes
missing, open to others or half-written closes password sign-in instead of keeping the old users."""

import json
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from support.console import OPERATOR, VIEWER, basic, csrf_token, in_process, recorded_console_log, sign_in
from worker.console.users import Users
from worker.store import open_store

PROXY = {"console_proxy_addresses": ("10.1.2.0/24",), "console_proxy_roles": {"sre": "operator"}}
PROXIED = {"X-Forwarded-User": "pat", "X-Forwarded-Groups": "sre"}


def _signed_in_cookie(client: TestClient) -> dict[str, str]:
    """Sign the operator in; the Cookie header that carries their session."""
    sign_in(client, OPERATOR)
    assert client.get("/").status_code == 200
    return {"Cookie": f"renewals_console={client.cookies['renewals_console']}"}


def _without(path: Path, name: str) -> None:
    """Write the users file again without `name`, as an administrator's editor would."""
    document = json.loads(path.read_text())
    del document["users"][name]
    path.write_text(json.dumps(document))


def _fresh(client: TestClient) -> TestClient:
    """Another client on the same app, holding no cookie (the old cookie is sent by hand)."""
    return TestClient(client.app, base_url="http://console.test", follow_redirects=False)


def test_a_password_change_ends_the_sessions_signed_in_with_the_old_one(tmp_path: Path) -> None:
    """Signed in, then given a new password: the old session's next request is sent to the login."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    Users.load(tmp_path / "console-users.json").add(OPERATOR[0], "operator", "a brand new password")
    assert _fresh(client).get("/", headers=old).status_code == 303
    assert _fresh(client).get("/api/groups", headers=old).status_code == 401


def test_removing_and_adding_a_user_again_does_not_revive_their_old_session(tmp_path: Path) -> None:
    """A user removed and added again with a new password: the cookie from before stays signed out."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    users_path = tmp_path / "console-users.json"
    _without(users_path, OPERATOR[0])
    assert _fresh(client).get("/", headers=old).status_code == 303
    Users.load(users_path).add(OPERATOR[0], "operator", "a brand new password")
    assert _fresh(client).get("/", headers=old).status_code == 303


def test_readding_a_user_with_the_same_password_does_not_revive_their_old_session(tmp_path: Path) -> None:
    """Removed while nobody used the session, then added again with the same password: still signed out."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    users_path = tmp_path / "console-users.json"
    _without(users_path, OPERATOR[0])
    Users.load(users_path).add(OPERATOR[0], "operator", OPERATOR[1])
    assert _fresh(client).get("/", headers=old).status_code == 303


def test_a_role_change_ends_the_users_sessions(tmp_path: Path) -> None:
    """An operator made a viewer is signed out at their next request, and signs in again as a viewer."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    Users.load(tmp_path / "console-users.json").add(OPERATOR[0], "viewer", OPERATOR[1])
    assert _fresh(client).get("/", headers=old).status_code == 303
    again = _fresh(client)
    sign_in(again, OPERATOR)
    page = again.get("/")
    assert page.status_code == 200 and "viewer" in page.text


def test_signing_out_ends_the_session_on_the_server(tmp_path: Path) -> None:
    """After sign-out the old cookie, replayed, is nobody: the session is gone from the store too."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    other = _fresh(client)
    other_cookie = _signed_in_cookie(other)
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert _fresh(client).get("/", headers=old).status_code == 303
    assert _fresh(client).get("/", headers=other_cookie).status_code == 303  # every session of the user
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    assert store.execute("SELECT count(*) FROM console_sessions").fetchone()[0] == 0


def test_a_session_ends_after_the_idle_timeout(tmp_path: Path) -> None:
    """No request for longer than RENEWALS_CONSOLE_SESSION_IDLE_MINUTES: signed out."""
    client, _ = in_process(tmp_path, [], console_session_idle_minutes=0.02)
    old = _signed_in_cookie(client)
    time.sleep(1.5)
    assert _fresh(client).get("/", headers=old).status_code == 303


def test_a_session_in_use_lasts_past_the_idle_timeout_but_not_past_the_absolute_one(tmp_path: Path) -> None:
    """Requests keep a session alive past the idle timeout, never past RENEWALS_CONSOLE_SESSION_HOURS:
    a request every 0.3 s (idle timeout 1.2 s, absolute 3.5 s) is let in for twice the idle
    timeout and turned away once the absolute timeout has passed."""
    client, _ = in_process(tmp_path, [], console_session_idle_minutes=0.02, console_session_hours=3.5 / 3600)
    before = time.monotonic()
    old = _signed_in_cookie(client)
    after = time.monotonic()
    statuses: list[tuple[float, float, int]] = []  # the longest and the shortest the session may have lived
    while time.monotonic() - after < 4.6:
        time.sleep(0.3)
        sent = time.monotonic()
        statuses.append((sent - before, sent - after, _fresh(client).get("/", headers=old).status_code))
    early = [(shortest, status) for longest, shortest, status in statuses if longest < 2.4]
    assert {status for _, status in early} == {200} and max(early)[0] > 1.5, statuses  # past idle
    late = [status for _, shortest, status in statuses if shortest > 4.0]
    assert late and set(late) == {303}, statuses


def test_a_deleted_users_file_closes_password_sign_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted while the console runs: 401 for scripts, sessions refused, one error line, said on health."""
    client, _ = in_process(tmp_path, [], **PROXY)
    old = _signed_in_cookie(client)
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200
    (tmp_path / "console-users.json").unlink()
    recorded = recorded_console_log(monkeypatch)
    for _ in range(3):
        assert _fresh(client).get("/", headers=old).status_code == 303
        refused = client.get("/api/groups", headers=basic(VIEWER))
        assert refused.status_code == 401 and "users file is unusable" in refused.json()["detail"]
    errors = [line for line in recorded.lines if line["log_level"] == "error"]
    assert [line["event"] for line in errors] == ["console.users_file_refused"]
    assert "no console users file" in errors[0]["problem"]
    proxy = TestClient(client.app, base_url="http://console.test", client=("10.1.2.3", 4000))
    health = proxy.get("/api/health", headers=PROXIED).json()
    assert "no console users file" in health["sign_in_error"]


def test_a_users_file_made_readable_by_others_closes_password_sign_in(tmp_path: Path) -> None:
    """chmod 644 while the console runs: nobody signs in with a password until it is private again."""
    client, _ = in_process(tmp_path, [])
    old = _signed_in_cookie(client)
    path = tmp_path / "console-users.json"
    path.chmod(0o644)
    assert _fresh(client).get("/", headers=old).status_code == 303
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 401
    path.chmod(0o600)
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200


def test_a_half_written_users_file_closes_password_sign_in_until_it_is_whole(tmp_path: Path) -> None:
    """Invalid JSON never keeps the old users: 401 until the file is whole again."""
    client, _ = in_process(tmp_path, [])
    path = tmp_path / "console-users.json"
    whole = path.read_text()
    path.write_text(whole[: len(whole) // 2])
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 401
    login = _fresh(client)
    token = csrf_token(login, "/login")
    form = {"username": VIEWER[0], "password": VIEWER[1], "csrf_token": token}
    assert login.post("/login", data=form).status_code == 401
    path.write_text(whole)
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200


def test_the_session_records_over_each_backend(store_url: str) -> None:
    """Start, find, touch, end one, end a user's but those with the current fingerprint, and prune: same on both."""
    from worker.store.console_sessions import ConsoleSessionRecords

    store = open_store(store_url)
    store.migrate()
    book = ConsoleSessionRecords(store)
    book.start("sid-a", "ann", "fp-1", now_us=1_000)
    book.start("sid-b", "ann", "fp-2", now_us=2_000)
    book.start("sid-c", "bob", "fp-1", now_us=3_000)
    kept = {row[0] for row in store.execute("SELECT sid_digest FROM console_sessions").fetchall()}
    assert len(kept) == 3 and not any(key.startswith("sid-") for key in kept)  # digests, never the ids
    found = book.find("sid-a")
    assert found is not None and (found.user, found.fingerprint, found.seen_at_us) == ("ann", "fp-1", 1_000)
    assert book.find("sid-unknown") is None
    book.touch("sid-a", now_us=5_000)
    assert book.find("sid-a").seen_at_us == 5_000  # type: ignore[union-attr]
    assert book.end_user("ann", except_fingerprint="fp-2") == 1 and book.find("sid-b") is not None
    book.end("sid-b")
    assert book.count("ann") == 0 and book.count() == 1
    assert book.prune(idle_before_us=3_001, created_before_us=0) == 1 and book.count() == 0
    store.close()


def test_sessions_end_on_a_password_change_over_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The console over PostgreSQL keeps its sessions there: a password change ends them too."""
    client, _ = in_process(tmp_path, [], store_url=postgres_url)
    old = _signed_in_cookie(client)
    Users.load(tmp_path / "console-users.json").add(OPERATOR[0], "operator", "a brand new password")
    assert _fresh(client).get("/", headers=old).status_code == 303
