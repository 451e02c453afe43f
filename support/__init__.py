"""Test support, shared by the tests, the benchmark and the fault-injection runner alike:
the real worker as a process, an independent broker client, a fresh vhost, spare servers,
polling with a deadline. Not part of the product (not installed); nothing here imports
`tests` or `bench`. The fault-injection runner lives here too (`python -m support.chaos`).
"""
