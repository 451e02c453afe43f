"""Several worker processes under one `renewals run` (`--processes N`): the pool that starts,
restarts and stops them, and the probes that answer for all of them."""

from worker.supervision.pool import supervise

__all__ = ["supervise"]
