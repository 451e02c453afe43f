"""The operator's tools behind the `renewals` subcommands: dead letters, owners, sending
events by hand, the demo. They talk to the broker through the worker's own
broker layer (`worker.broker`), with its URL lists and TLS settings."""
