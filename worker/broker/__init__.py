"""AMQP through py-amqp: node lists and TLS, reading deliveries, confirmed publishing, the
session's links, the topology as data. The running worker (`worker.service`) never imports
this package: it meets the broker at `worker.service.ports`, in `worker.messaging`'s terms."""
