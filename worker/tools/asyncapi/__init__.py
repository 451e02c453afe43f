"""The worker's published contract, docs/asyncapi.yaml: an AsyncAPI 3.0.0 document built from
the topology, the message registry and the models the worker runs on."""

from worker.tools.asyncapi.document import document, render
from worker.tools.asyncapi.examples import examples

__all__ = ["document", "examples", "render"]
