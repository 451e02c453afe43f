"""The operator's tools behind the `renewals` subcommands: dead letters, owners, sending
events by hand, the demo. They talk to the broker with short-lived pika connections."""
