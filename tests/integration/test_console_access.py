"""The console is closed by default and every request is checked on the server: who (users
file, HTTP Basic, session, trusted proxy), with which role, not forged from another site, and
answered with the security headers."""

import json
import os
import socket
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from support.console import OPERATOR, VIEWER, basic, csrf_token, in_process, sign_in, users_file
from support.letters import new_letter
from worker.cli import main
from worker.console.access import access_of
from worker.console.identity import ConsoleRefused
from worker.console.users import Users
from worker.exits import EX_CONFIG
from worker.settings import Settings


def test_nothing_configured_refuses_to_start_with_one_line_naming_the_fix(tmp_path: Path) -> None:
    """No users file and no proxy: `renewals console` exits 78 with one line saying what to set."""
    result = CliRunner().invoke(
        main,
        ["console"],
        env={"RENEWALS_STORE_URL": f"sqlite:///{tmp_path}/s.db", "RENEWALS_CONSOLE_USERS": ""},
    )
    assert result.exit_code == EX_CONFIG
    assert result.output.count("\n") == 1, result.output
    assert "RENEWALS_CONSOLE_USERS" in result.output and "renewals console user add" in result.output


def test_a_users_file_without_users_or_open_to_others_is_refused(tmp_path: Path) -> None:
    """An empty users file, or one others may read, stops the console with the fix named."""
    empty = tmp_path / "empty.json"
    empty.write_text('{"users": {}}')
    empty.chmod(0o600)
    with pytest.raises(ConsoleRefused, match="has no users: add one with"):
        access_of(Settings(console_users=str(empty)))
    Users.load(tmp_path / "open.json", missing_ok=True).add("ann", "viewer", "a-long-password")
    (tmp_path / "open.json").chmod(0o644)
    with pytest.raises(ConsoleRefused, match="chmod 600"):
        access_of(Settings(console_users=str(tmp_path / "open.json")))


def test_a_proxy_without_group_roles_is_refused() -> None:
    """A trusted proxy whose groups map to no role would let nobody in: say so at start."""
    with pytest.raises(ConsoleRefused, match="RENEWALS_CONSOLE_PROXY_ROLES"):
        access_of(Settings(console_proxy_addresses=("10.0.0.1",)))


def test_user_add_writes_an_argon2_hash_readable_by_its_owner_only(tmp_path: Path) -> None:
    """`console user add NAME --role R --password-stdin` keeps an argon2id hash, file mode 0600."""
    path = tmp_path / "users.json"
    result = CliRunner().invoke(
        main,
        ["console", "user", "add", "ann", "--role", "operator", "--password-stdin"],
        input="correct horse battery\n",
        env={"RENEWALS_CONSOLE_USERS": str(path)},
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    entry = json.loads(path.read_text())["users"]["ann"]
    assert entry["role"] == "operator" and entry["hash"].startswith("$argon2id$")
    assert "correct horse" not in path.read_text()
    users = Users.load(path)
    assert users.verify("ann", "correct horse battery") is not None
    assert users.verify("ann", "wrong horse battery") is None


def test_the_api_says_401_without_or_with_wrong_credentials(tmp_path: Path) -> None:
    """No credentials, a wrong password or an unknown user: 401 with a Basic challenge."""
    client, _ = in_process(tmp_path, [new_letter()])
    for headers in ({}, basic((VIEWER[0], "not-the-password")), basic(("mallory", "whatever-password"))):
        response = client.get("/api/dead-letters", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"].startswith("Basic")
    assert client.get("/api/dead-letters", headers=basic(VIEWER)).status_code == 200


def test_a_viewer_reads_but_every_action_is_403(tmp_path: Path) -> None:
    """Roles are enforced on the server: a viewer's replay, archive, purge, note, cancel get 403."""
    client, records = in_process(tmp_path, [new_letter()])
    [letter] = records.page().letters
    auth = basic(VIEWER)
    assert client.get("/api/groups", headers=auth).status_code == 200
    assert client.get(f"/api/dead-letters/{letter.id}", headers=auth).status_code == 200
    attempts = [
        ("POST", "/api/replays", {"selection": {"all": True}}),
        ("POST", "/api/replays", {"selection": {"all": True}, "dry_run": True}),
        ("POST", "/api/archive", {"all": True}),
        ("POST", "/api/purge", {"all": True}),
        ("POST", f"/api/dead-letters/{letter.id}/notes", {"text": "mine"}),
        ("DELETE", "/api/replays/anything", None),
    ]
    for method, path, body in attempts:
        response = client.request(method, path, json=body, headers=auth)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["detail"] == "this needs the operator role; vera is a viewer"
    assert records.count() == 1 and records.audit_log() == []


def test_an_operator_acts_and_the_action_is_audited_with_user_operation_selection_counts(
    tmp_path: Path,
) -> None:
    """An operator's archive through the API is done and written to the store's audit."""
    client, records = in_process(tmp_path, [new_letter(reason="invalid_payload"), new_letter()])
    response = client.post("/api/archive", json={"reason": ["invalid_payload"]}, headers=basic(OPERATOR))
    assert response.status_code == 200, response.text
    assert response.json()["archived"] == 1
    [entry] = records.audit_log()
    assert (entry.actor, entry.action, entry.operation_id) == (
        OPERATOR[0],
        "archive",
        response.json()["operation_id"],
    )
    assert "--reason invalid_payload" in entry.selection and entry.counts == {"archived": 1}


def test_an_action_without_a_selection_is_refused_unless_all_is_asked_for(tmp_path: Path) -> None:
    """An empty selection never means every letter by accident: 422 naming the fix."""
    client, records = in_process(tmp_path, [new_letter()])
    response = client.post("/api/purge", json={}, headers=basic(OPERATOR))
    assert response.status_code == 422 and "ask for all" in response.text
    assert records.count() == 1


def test_pages_send_strangers_to_the_login_and_sign_in_sets_a_safe_cookie(tmp_path: Path) -> None:
    """Signed out, a page redirects to /login; signing in sets a signed HttpOnly SameSite cookie."""
    client, _ = in_process(tmp_path, [new_letter()])
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    token = csrf_token(client, "/login")
    wrong = client.post("/login", data={"username": OPERATOR[0], "password": "nope", "csrf_token": token})
    assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
    right = client.post(
        "/login", data={"username": OPERATOR[0], "password": OPERATOR[1], "csrf_token": token}
    )
    assert right.status_code == 303
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/")
    assert page.status_code == 200 and OPERATOR[0] in page.text


def test_a_tampered_session_cookie_is_nobody(tmp_path: Path) -> None:
    """A session cookie whose signature does not match is ignored: back to the login."""
    client, _ = in_process(tmp_path, [new_letter()])
    sign_in(client, OPERATOR)
    value = client.cookies["renewals_console"]
    client.cookies.clear()
    assert client.get("/", headers={"Cookie": f"renewals_console={value}"}).status_code == 200
    tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    assert client.get("/", headers={"Cookie": f"renewals_console={tampered}"}).status_code == 303


def test_every_state_change_from_the_browser_needs_the_csrf_token(tmp_path: Path) -> None:
    """Signed in as an operator: without the token, with another's, or cross-origin, 403; with it, done."""
    client, records = in_process(tmp_path, [new_letter(reason="invalid_payload")])
    token = sign_in(client, OPERATOR)
    form = {"action": "archive", "reason": "invalid_payload"}
    assert client.post("/actions/confirm", data=form).status_code == 403
    assert client.post("/actions/confirm", data={**form, "csrf_token": "0" * 64}).status_code == 403
    other, _ = in_process(tmp_path / "other", [])
    assert (
        client.post("/actions/confirm", data={**form, "csrf_token": sign_in(other, OPERATOR)}).status_code
        == 403
    )
    forged = client.post(
        "/actions/confirm", data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status_code == 403
    assert (
        client.post("/api/archive", json={"all": True}).status_code == 403
    )  # the session on the API, no token
    cross_site = {"Sec-Fetch-Site": "cross-site"}
    assert (
        client.post("/actions/confirm", data={**form, "csrf_token": token}, headers=cross_site).status_code
        == 403
    )
    assert records.count() == 1
    # What Chromium sends for a same-origin form under Referrer-Policy: no-referrer.
    browser_like = {"Origin": "null", "Sec-Fetch-Site": "same-origin"}
    done = client.post("/actions/confirm", data={**form, "csrf_token": token}, headers=browser_like)
    assert done.status_code == 200 and records.count() == 0


def test_login_and_logout_need_the_csrf_token_too(tmp_path: Path) -> None:
    """A login forged from another site (login CSRF) is refused."""
    client, _ = in_process(tmp_path, [])
    response = client.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1]})
    assert response.status_code == 403
    assert client.get("/").status_code == 303


def test_basic_credentials_sent_by_a_browser_from_another_site_are_refused(tmp_path: Path) -> None:
    """HTTP Basic is for scripts: a cross-site request carrying it (Sec-Fetch-Site) changes nothing."""
    client, records = in_process(tmp_path, [new_letter()])
    headers = {**basic(OPERATOR), "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/purge", json={"all": True}, headers=headers).status_code == 403
    assert records.count() == 1


def test_security_headers_on_pages_api_and_refusals(tmp_path: Path) -> None:
    """CSP without inline script and no framing, nosniff and no referrer, on every response."""
    client, _ = in_process(tmp_path, [])
    sign_in(client, VIEWER)
    pages = ("/", "/login", "/api/groups", "/static/htmx.min.js", "/letters/999", "/api/nothing", "/nothing")
    for response in (client.get(path) for path in pages):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in client.get("/").text.replace('<script src="/static/htmx.min.js"></script>', "")


def test_proxy_headers_count_only_from_the_proxys_address(tmp_path: Path) -> None:
    """The proxy's user and groups sign in from its address; the same headers from elsewhere are nobody."""
    proxied = {"X-Forwarded-User": "pat@corp.example", "X-Forwarded-Groups": "support,sre"}
    settings = {
        "console_proxy_addresses": ("10.1.2.0/24",),
        "console_proxy_roles": {"sre": "operator", "support": "viewer"},
    }
    from_proxy, records = in_process(tmp_path, [new_letter()], **settings)
    from_proxy = type(from_proxy)(from_proxy.app, base_url="http://console.test", client=("10.1.2.3", 4000))
    page = from_proxy.get("/", headers=proxied)
    assert page.status_code == 200 and "pat@corp.example" in page.text and "operator" in page.text
    elsewhere = type(from_proxy)(from_proxy.app, base_url="http://console.test", client=("10.9.9.9", 4000))
    assert elsewhere.get("/api/groups", headers=proxied).status_code == 401
    unmapped = {"X-Forwarded-User": "eve", "X-Forwarded-Groups": "marketing"}
    assert from_proxy.get("/api/groups", headers=unmapped).status_code == 403
    token = csrf_token(from_proxy, "/")  # the proxy signs people in; the console's cookie still binds CSRF
    viewer = {"X-Forwarded-User": "sam", "X-Forwarded-Groups": "support", "X-CSRF-Token": token}
    refused = from_proxy.post("/api/archive", json={"all": True}, headers=viewer)
    assert refused.status_code == 403 and "needs the operator role" in refused.json()["detail"]
    unforged = from_proxy.post("/api/archive", json={"all": True}, headers=proxied)
    assert unforged.status_code == 403 and "CSRF" in unforged.json()["detail"]
    assert records.count() == 1
    done = from_proxy.post("/api/archive", json={"all": True}, headers={**proxied, "X-CSRF-Token": token})
    assert done.status_code == 200 and records.count() == 0
    assert records.audit_log()[0].actor == "pat@corp.example"


def test_the_openapi_document_describes_the_api(tmp_path: Path) -> None:
    """/api/openapi.json lists the API's operations (and no page), to console users only."""
    client, _ = in_process(tmp_path, [])
    assert client.get("/api/openapi.json").status_code == 401
    document = client.get("/api/openapi.json", headers=basic(VIEWER)).json()
    paths = document["paths"]
    for path in (
        "/api/dead-letters",
        "/api/dead-letters/{letter_id}",
        "/api/groups",
        "/api/replays",
        "/api/replays/{operation_id}",
        "/api/archive",
        "/api/purge",
        "/api/owners",
        "/api/health",
    ):
        assert path in paths, path
    assert "delete" in paths["/api/replays/{operation_id}"]
    assert not any(not p.startswith("/api/") for p in paths)


def test_changes_to_the_users_file_count_while_the_console_runs(tmp_path: Path) -> None:
    """A new role ends the user's session and counts at once for scripts; a new password replaces the old."""
    client, _ = in_process(tmp_path, [])
    sign_in(client, OPERATOR)
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 200
    users = Users.load(tmp_path / "console-users.json")
    users.add(OPERATOR[0], "viewer", OPERATOR[1])
    assert client.get("/").status_code == 303  # signed out: the session was made for an operator
    refused = client.post("/api/archive", json={"all": True}, headers=basic(OPERATOR))
    assert refused.status_code == 403 and "olive is a viewer" in refused.json()["detail"]
    users.add(VIEWER[0], "viewer", "a brand new password")
    assert client.get("/api/groups", headers=basic(VIEWER)).status_code == 401
    assert client.get("/api/groups", headers=basic((VIEWER[0], "a brand new password"))).status_code == 200
    users.remove(OPERATOR[0])
    assert client.get("/api/groups", headers=basic(OPERATOR)).status_code == 401


def test_a_port_in_use_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    """`renewals console --port P` with P taken: exit 78, one line saying to choose another port."""
    users = users_file(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main,
            ["console", "--port", str(port)],
            env={"RENEWALS_STORE_URL": f"sqlite:///{tmp_path}/s.db", "RENEWALS_CONSOLE_USERS": str(users)},
        )
    assert result.exit_code == EX_CONFIG
    assert result.output.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "choose another --host or --port" in result.output
