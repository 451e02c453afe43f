"""The fault-injection runner: a seeded stream of events and bad inputs through one or more
workers, on SQLite or PostgreSQL, on one RabbitMQ node or a 3-node cluster, while workers are
killed (-9) or stopped (SIGTERM) and restarted, the broker restarts, the broker closes worker
connections, cluster nodes stop and start, and PostgreSQL restarts or cuts its connections.

The checker compares every notification and dead letter that came out with the runner's own
computation of what should have, and prints lost, duplicated and unexpected counts; the exit
status is 1 if any is not zero. Every server is a throw-away one the runner starts itself
(support/), so nothing else is disturbed. The stream, and the order of the faults, follow
from --seed.

Usage: python -m support.chaos --help
"""

import argparse
import shlex
import sys

from support.chaos.options import FAULTS, RABBITMQ, Options
from support.chaos.run import run


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m support.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=1, help="the stream and the faults' order follow from it")
    parser.add_argument("--events", type=int, default=20_000, help="messages in the stream, at least (20000)")
    parser.add_argument("--rate", type=float, default=1000, help="events per second billing offers at most")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on the same queue and store")
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="a SQLite file, or a throw-away PostgreSQL the runner starts",
    )
    parser.add_argument(
        "--cluster", action="store_true", help="a 3-node RabbitMQ cluster instead of one node"
    )
    parser.add_argument(
        "--rabbitmq",
        default=RABBITMQ[0],
        help=f"the cluster's RabbitMQ, one of {', '.join(RABBITMQ)}: 3.10 is the host's, 4.x run in the"
        " test matrix's Debian chroot (support/brokers/rabbitmq4.sh)",
    )
    for fault, what in {
        "kills": "kill -9 of a worker, then a restart",
        "sigterms": "graceful stop (SIGTERM) of a worker, then a restart",
        "broker-restarts": "rabbitmqctl stop_app / start_app (one node)",
        "connection-closes": "rabbitmqctl close_connection of a worker connection",
        "node-stops": "a cluster node (the worker queue's leader) stopped and started (--cluster)",
        "pg-restarts": "PostgreSQL stopped and started (--store postgres)",
        "pg-cuts": "every PostgreSQL connection terminated (--store postgres)",
    }.items():
        parser.add_argument(f"--{fault}", type=int, default=0, metavar="N", help=what)
    parser.add_argument("--fault-gap", type=float, default=3.0, help="least seconds between faults")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for the last outputs")
    args = parser.parse_args(argv)
    names = dict(
        zip(
            [
                "kills",
                "sigterms",
                "broker_restarts",
                "connection_closes",
                "node_stops",
                "pg_restarts",
                "pg_cuts",
            ],
            FAULTS,
            strict=True,
        )
    )
    options = Options(
        seed=args.seed,
        events=args.events,
        rate=args.rate,
        workers=args.workers,
        store=args.store,
        cluster=args.cluster,
        rabbitmq=args.rabbitmq,
        faults={fault: getattr(args, name) for name, fault in names.items()},
        fault_gap=args.fault_gap,
        timeout=args.timeout,
    )
    if options.problems():
        parser.error("; ".join(options.problems()))
    return options


def main() -> None:
    options = parse(sys.argv[1:])
    print(f"python -m support.chaos {shlex.join(sys.argv[1:])}", flush=True)
    report = run(options)
    print(report.render())
    sys.exit(0 if report.verdict.ok else 1)


if __name__ == "__main__":
    main()
