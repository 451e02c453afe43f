"""Letters nested deeper than the boundary allows, read back out of both stores through every
door (the console's API and page, `renewals dlq show` and `list --json`): rows an older release
wrote before the boundary existed, and bodies JSON cannot be indented from. Each is shown, and
the letters beside it too."""

import json
from pathlib import Path

from click.testing import CliRunner, Result

from support.console import VIEWER, basic, in_process
from support.letters import new_letter
from support.nesting import depth_of
from worker.boundary import MARK, MAX_DEPTH
from worker.cli import main
from worker.dead_letters.records import DeadLetterRecords


def nested_json(levels: int, name: str = "n") -> str:
    """JSON text of a table `levels` deep, as an older release's unbounded encoder wrote it."""
    return f'{{"{name}":' * levels + "1" + "}" * levels


def dlq(store_url: str, *args: str) -> Result:
    result = CliRunner().invoke(main, ["dlq", *args], env={"RENEWALS_STORE_URL": store_url})
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def overwrite_headers(records: DeadLetterRecords, letter_id: int, text: str) -> None:
    with records._store.transaction():
        records._store.execute("UPDATE dead_letters SET headers = ? WHERE id = ?", (text, letter_id))


def test_rows_an_older_release_wrote_deep_are_shown_by_the_api_the_page_and_the_cli(
    tmp_path: Path, store_url: str
) -> None:
    """Headers stored 300 deep (pydantic's serialisation refused them: a 500) and 1,500 deep (JSON cannot read them back): the API, the page, `dlq show` and `dlq list --json` show each letter and its neighbours."""
    client, records = in_process(
        tmp_path, [new_letter(event_id=f"evt-{n}") for n in range(4)], store_url=store_url
    )
    first, deep, deeper, last = (summary.id for summary in records.page().letters)
    overwrite_headers(records, deep, f'{{"x-error-reason": "no_recipient", "h": {nested_json(300)}}}')
    overwrite_headers(records, deeper, nested_json(1500, "h"))
    auth = basic(VIEWER)
    shown = {}
    for letter_id in (first, deep, deeper, last):
        api = client.get(f"/api/dead-letters/{letter_id}", headers=auth)
        assert api.status_code == 200, api.text[:500]
        shown[letter_id] = api.json()
        page = client.get(f"/letters/{letter_id}", headers=auth)
        assert page.status_code == 200, page.text[:500]
        assert json.loads(dlq(store_url, "show", f"#{letter_id}", "--json").stdout)["position"] == letter_id
        assert dlq(store_url, "show", f"#{letter_id}").stdout
    assert depth_of(shown[deep]["headers"]) <= MAX_DEPTH and MARK in json.dumps(shown[deep]["headers"])
    why = "its stored properties could not be read: RecursionError"
    assert shown[deeper]["headers"] == {} and shown[deeper]["problem"].startswith(why)
    assert why in client.get(f"/letters/{deeper}", headers=auth).text
    assert f"problem: {why}" in dlq(store_url, "show", f"#{deeper}").stdout
    assert json.loads(dlq(store_url, "show", f"#{deeper}", "--json").stdout)["problem"].startswith(why)
    assert (
        shown[first]["headers"]["x-error-reason"]
        == shown[last]["headers"]["x-error-reason"]
        == "no_recipient"
    )
    listed = json.loads(dlq(store_url, "list", "--json").stdout)
    assert [row["position"] for row in listed] == [last, deeper, deep, first]  # newest first


def test_a_body_json_nested_3000_deep_is_shown_as_text_on_the_page(tmp_path: Path, store_url: str) -> None:
    """A JSON body too deep to indent is shown as it came, not as a 500."""
    body = b'{"id": "evt-deep", "data": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    client, records = in_process(tmp_path, [new_letter(event_id="evt-deep", body=body)], store_url=store_url)
    [summary] = records.page().letters
    page = client.get(f"/letters/{summary.id}", headers=basic(VIEWER))
    assert page.status_code == 200 and "[[[[[[[[" in page.text
