"""`renewals notifications`: the notifications waiting in the unrouted queue, read without
removing them (until something binds to the notifications exchange, every notification lands
there)."""

from typing import Any

import click
from amqp.exceptions import AMQPError

from worker import logs
from worker.cli.core import broker_of, load_settings
from worker.dead_letters import DeadLetter
from worker.printable import printable
from worker.redaction import masked
from worker.tools.peek import PeekError, QueuePeek
from worker.tools.tables import render

COLUMNS = ["#", "notification", "event", "client", "audience", "to", "cc"]


@click.command(short_help="Show the notifications nobody routed.")
@click.option("--json", "as_json", is_flag=True, help="Each notification's JSON body, one per line.")
def notifications(as_json: bool) -> None:
    """Show the notifications waiting in the unrouted queue (RENEWALS_UNROUTED_QUEUE).

    Every notification lands there until a queue is bound to the notifications exchange for
    its routing key. Reading changes nothing: each message goes back to its place.
    """
    settings = load_settings()
    broker = broker_of(settings)
    log = logs.get_logger("renewals.notifications")
    try:
        with QueuePeek(broker, settings.unrouted_queue, log=log) as queue:
            waiting = [letter for letter, _ in queue.read()]
    except PeekError as exc:
        raise click.ClickException(str(exc)) from None
    except (AMQPError, OSError) as exc:
        raise click.ClickException(
            f"broker error on {broker}: {type(exc).__name__}: {masked(str(exc))}"
        ) from None
    if as_json:
        for letter in waiting:
            click.echo(printable(letter.body.decode("utf-8", errors="replace")))
        return
    click.echo(render([_row(letter) for letter in waiting], COLUMNS))
    click.echo(f"\n{len(waiting)} waiting in {settings.unrouted_queue}")


def _row(letter: DeadLetter) -> dict[str, Any]:
    data = (letter.document or {}).get("data")
    data = data if isinstance(data, dict) else {}

    def emails(field: str) -> list[str]:
        recipients = data.get(field)
        if not isinstance(recipients, list):
            return []
        return [str(r.get("email")) for r in recipients if isinstance(r, dict)]

    return {
        "#": letter.position,
        "notification": letter.id,
        "event": data.get("causation_id"),
        "client": data.get("client_id"),
        "audience": data.get("audience"),
        "to": emails("to"),
        "cc": emails("cc"),
    }
