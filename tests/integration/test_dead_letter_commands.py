"""`renewals dlq` over the records, on SQLite and PostgreSQL alike: groups, text search, archive
by age, notes and history, the status filter, replay operations listed and cancelled. No
broker: the letters are put in the store as the worker's drain puts them."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from support.letters import new_letter
from worker.cli import main
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

NOW = datetime.now(UTC)


class CommandsContract:
    url: str

    def records(self) -> DeadLetterRecords:
        store = open_store(self.url)
        store.migrate()
        return DeadLetterRecords(store)

    def dlq(self, *args: str) -> Result:
        env = {
            "RENEWALS_STORE_URL": self.url,
            "RENEWALS_LOG_FORMAT": "json",
            "RENEWALS_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",  # none: these tests need no broker
        }
        return CliRunner().invoke(main, ["dlq", *args], env=env)

    def ok(self, *args: str) -> Result:
        result = self.dlq(*args)
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)

    def fill(self) -> None:
        """Six letters: two groups of no_recipient (different clients, same pattern), an old
        invalid_payload, and a retries_exhausted naming a KeyError."""
        self.records().insert(
            [
                new_letter(
                    event_id="nr-1", detail="owner is 'platform', no contact for client 'c-1'", failed_at=NOW
                ),
                new_letter(
                    event_id="nr-2", detail="owner is 'platform', no contact for client 'c-2'", failed_at=NOW
                ),
                new_letter(
                    event_id="nr-3", detail="owner is 'platform', no contact for client 'c-3'", failed_at=NOW
                ),
                new_letter(
                    event_id="old-1",
                    event_type="OwnerChanged",
                    reason="invalid_payload",
                    detail="owner 'partner' needs a partner_contact",
                    failed_at=NOW - timedelta(days=40),
                ),
                new_letter(
                    event_id="old-2",
                    event_type="OwnerChanged",
                    reason="invalid_payload",
                    detail="owner 'nobody' needs a partner_contact",
                    failed_at=NOW - timedelta(days=3),
                ),
                new_letter(
                    event_id="bug-1",
                    reason="retries_exhausted",
                    detail="bug: KeyError: 'c-9' at handlers/rules.py:41",
                    failed_at=NOW,
                ),
            ]
        )

    def test_groups_gather_letters_failing_the_same_way(self) -> None:
        """Three no_recipient letters for different clients are one group, two invalid
        payloads for different owners another; --group selects a group in list."""
        self.fill()
        groups = self.json("groups")
        assert [(group["count"], group["reason"]) for group in groups] == [
            (3, "no_recipient"),
            (2, "invalid_payload"),
            (1, "retries_exhausted"),
        ]
        assert groups[0]["detail"] == "owner is '…', no contact for client '…'"
        assert sum(groups[0]["trend"]) == 3 and len(groups[0]["trend"]) == 24
        table = self.ok("groups").stdout
        assert table.splitlines()[0].split()[:3] == ["group", "count", "reason"]
        listed = self.json("list", "--group", groups[1]["group"])
        assert [row["id"] for row in listed] == ["old-2", "old-1"]  # newest first

    def test_text_search_finds_ids_details_and_bodies(self) -> None:
        """--text matches case-insensitively in the detail, the id and the body."""
        self.fill()
        assert [row["id"] for row in self.json("list", "--text", "KEYERROR")] == ["bug-1"]
        assert [row["id"] for row in self.json("list", "--text", "old-", "--oldest-first")] == [
            "old-1",
            "old-2",
        ]
        assert [row["id"] for row in self.json("list", "--text", '"type": "ownerchanged"')] == [
            "old-2",
            "old-1",
        ]
        missing = self.dlq("list", "--text", "nothing like it")
        assert missing.exit_code == 1 and "no dead letter matches --text 'nothing like it'" in missing.stderr

    def test_archive_by_age_then_the_status_filter(self) -> None:
        """`archive --older-than 30d` takes only the letter failed 40 days ago; it leaves the
        list, shows under --status archived, and its history says who archived it."""
        self.fill()
        assert self.ok("archive", "--older-than", "30d", "--yes").stdout.strip() == "archived 1 dead letters"
        assert "old-1" not in [row["id"] for row in self.json("list")]
        assert [row["id"] for row in self.json("list", "--status", "archived")] == ["old-1"]
        assert len(self.json("list", "--status", "all")) == 6
        [entry] = self.json("history", "old-1")
        assert entry["what"] == "archived" and entry["by"]
        refused = self.dlq("archive")
        assert refused.exit_code == 1 and "give a filter" in refused.stderr

    def test_notes_are_kept_in_the_history_and_shown(self) -> None:
        """A note by event id or by #N lands in the letter's history; show prints it."""
        self.fill()
        self.ok("note", "nr-2", "billing fixes c-2 on Monday")
        number = self.json("list", "--id", "nr-3")[0]["position"]
        self.ok("note", f"#{number}", "second look")
        history = self.json("history", "nr-2")
        assert [(entry["what"], entry["outcome"]) for entry in history] == [
            ("note", "billing fixes c-2 on Monday")
        ]
        assert "billing fixes c-2 on Monday" in self.ok("show", "nr-2").stdout
        assert self.json("show", "nr-3")["history"][0]["outcome"] == "second look"
        unknown = self.dlq("note", "nope", "x")
        assert unknown.exit_code == 1 and "no dead letter with id nope" in unknown.stderr

    def test_replay_operations_are_listed_and_cancelled_from_another_process(self) -> None:
        """An operation started elsewhere shows in `replays`; `cancel` flags it, and one no
        process runs any more ends cancelled at once."""
        self.fill()
        operation = self.records().start_replay(
            LetterFilter(reasons=frozenset({"no_recipient"})), actor="ana", rate=5
        )
        [row] = self.json("replays")
        assert (row["operation"], row["status"], row["total"], row["by"]) == (
            operation.id,
            "running",
            3,
            "ana",
        )
        assert (
            self.ok("cancel", operation.id).stdout.strip()
            == f"replay {operation.id}: running, cancel requested"
        )
        assert self.records().operation(operation.id).cancel_requested
        refused = self.dlq("replay", "--resume", operation.id)
        assert refused.exit_code == 1 and "running in another process" in refused.stderr
        assert self.dlq("cancel", "nope").stderr.strip() == "Error: no replay operation nope"

    @pytest.mark.parametrize("rate", ["inf", "-inf", "nan", "1e400", "0", "-3", "100001", "fast"])
    def test_a_rate_that_cannot_be_held_is_one_line_and_starts_no_replay(self, rate: str) -> None:
        """`--rate` infinite, NaN, zero, negative, too large or not a number: one line naming
        what is allowed, exit status 2, no traceback, and no operation was recorded."""
        self.fill()
        refused = self.dlq("replay", "--reason", "no_recipient", "--rate", rate)
        assert refused.exit_code == 2, refused.output
        assert "Traceback" not in refused.output and "--rate" in refused.stderr
        assert "letters per second" in refused.stderr.splitlines()[-1]
        assert self.records().operations() == []

    def test_resuming_a_replay_stored_with_an_infinite_rate_is_one_line_and_leaves_it_cancelled(self) -> None:
        """An operation recorded with rate inf (before rates were checked): `--resume` says in
        one line that it cannot be resumed and why, and the operation stays cancelled."""
        self.fill()
        records = self.records()
        operation = records.start_replay(
            LetterFilter(reasons=frozenset({"no_recipient"})), actor="ana", rate=None
        )
        records._store.execute(
            "UPDATE dead_letter_replays SET rate = ? WHERE id = ?", (float("inf"), operation.id)
        )
        records.finish(operation.id, actor="ana", cancelled=True)
        refused = self.dlq("replay", "--resume", operation.id)
        assert refused.exit_code == 1 and "Traceback" not in refused.output
        assert refused.stderr.strip().startswith(f"Error: replay {operation.id} cannot be resumed:")
        assert "letters per second" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
        assert self.records().operation(operation.id).status == "cancelled"

    def test_archive_lists_first_and_archives_only_with_yes(self) -> None:
        """Without --yes archive lists what it would take and changes nothing (exit 1, one line
        naming --yes; with --json the list as one object); with --yes it archives them."""
        self.fill()
        dry = self.dlq("archive", "--reason", "invalid_payload")
        assert dry.exit_code == 1 and "old-1" in dry.stdout and "old-2" in dry.stdout
        assert dry.stderr.strip() == "Error: would archive 2; nothing archived without --yes"
        preview = json.loads(self.dlq("archive", "--reason", "invalid_payload", "--json").stdout)
        assert preview["would_archive"] == 2 and [row["id"] for row in preview["letters"]] == [
            "old-1",
            "old-2",
        ]
        assert self.json("list", "--status", "archived") == []
        done = self.json("archive", "--reason", "invalid_payload", "--yes")
        assert (done["archived"], done["selection"]) == (2, "--reason invalid_payload")
        assert [row["id"] for row in self.json("list", "--status", "archived")] == ["old-2", "old-1"]
        [entry] = [e for e in self.json("audit") if e["operation_id"] == done["operation_id"]]
        assert entry["action"] == "archive" and entry["counts"] == {"archived": 2}

    def test_every_changing_command_says_what_it_did_as_one_json_object(self) -> None:
        """`note`, `purge --yes` and `cancel` with --json print one JSON object each, naming
        the audited operation and its counts; `store migrate --json` the versions."""
        self.fill()
        noted = self.json("note", "nr-2", "asked billing")
        assert (noted["noted"], noted["selection"]) == (
            1,
            f"#{self.json('list', '--id', 'nr-2')[0]['position']}",
        )
        assert any(e["operation_id"] == noted["operation_id"] for e in self.json("audit"))
        purged = self.json("purge", "--reason", "retries_exhausted", "--yes")
        assert (purged["purged"], purged["selection"]) == (1, "--reason retries_exhausted")
        operation = self.records().start_replay(LetterFilter(), actor="ana", rate=5)
        cancelled = self.json("cancel", operation.id)
        assert (cancelled["operation"], cancelled["status"]) == (operation.id, "running (cancel requested)")
        env = {"RENEWALS_STORE_URL": self.url, "RENEWALS_LOG_FORMAT": "json"}
        migrated = CliRunner().invoke(main, ["store", "migrate", "--json"], env=env)
        assert migrated.exit_code == 0, migrated.output
        facts = json.loads(migrated.stdout)
        assert facts["before"] == facts["after"] and facts["migrated"] is False

    def test_listings_are_newest_first_unless_oldest_first(self) -> None:
        """`list`, `history`, `replays` and `audit` show the newest first; --oldest-first
        turns each around; `list --limit N` shows the newest N (the oldest N with --oldest-first)."""
        self.fill()
        oldest = [row["position"] for row in self.json("list", "--oldest-first")]
        assert oldest == sorted(oldest) and [row["position"] for row in self.json("list")] == oldest[::-1]
        assert [row["position"] for row in self.json("list", "--limit", "2")] == oldest[::-1][:2]
        assert [row["position"] for row in self.json("list", "--limit", "2", "--oldest-first")] == oldest[:2]
        self.ok("note", "nr-1", "first")
        self.ok("note", "nr-1", "second")
        assert [e["outcome"] for e in self.json("history", "nr-1")] == ["second", "first"]
        assert [e["outcome"] for e in self.json("history", "nr-1", "--oldest-first")] == ["first", "second"]
        records = self.records()
        first = records.start_replay(LetterFilter(), actor="ana", rate=5)
        second = records.start_replay(LetterFilter(), actor="bob", rate=5)
        assert [row["operation"] for row in self.json("replays")] == [second.id, first.id]
        assert [row["operation"] for row in self.json("replays", "--oldest-first")] == [first.id, second.id]
        newest = self.json("audit")
        assert [e["at"] for e in newest] == sorted(e["at"] for e in newest)[::-1]
        assert self.json("audit", "--oldest-first") == newest[::-1]

    def test_purge_lists_first_and_keeps_the_history(self) -> None:
        """Without --yes purge lists and changes nothing; with it the letters leave the list
        and keep their history under --status purged."""
        self.fill()
        dry = self.dlq("purge", "--reason", "retries_exhausted")
        assert dry.exit_code == 1 and "bug-1" in dry.stdout and "nothing purged without --yes" in dry.stderr
        assert (
            self.ok("purge", "--reason", "retries_exhausted", "--yes").stdout.strip()
            == "purged 1 dead letters"
        )
        assert [row["id"] for row in self.json("list", "--status", "purged")] == ["bug-1"]
        assert [entry["what"] for entry in self.json("history", "bug-1")] == ["purged"]


class TestSqliteCommands(CommandsContract):
    @pytest.fixture(autouse=True)
    def _url(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'renewals.db'}"


class TestPostgresCommands(CommandsContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
