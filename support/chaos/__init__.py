"""The fault-injection runner and its checker; `python -m support.chaos` is its command line:

- `stream`: a seeded stream of events and bad inputs, in two phases, with what each should give;
- `rules`: the runner's own small model of docs/domain.md (never the worker's handlers);
- `billing`: publishes the stream with confirms through broker restarts and node stops;
- `deployment`: the spare servers and worker processes, and the faults injected into them;
- `observe`: what came out (notifications, dead letters, what is left in the queues);
- `checker`: lost, duplicated and unexpected, compared with the expectation;
- `options`, `run`, `report`: what a run is asked to do, doing it once, and what it prints.
"""
