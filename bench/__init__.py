"""Benchmarks for chatstream, run with `python -m bench` (or `make bench`).

    bench.clients  which upstream HTTP/SSE client costs the least CPU per token
    bench.relay    the relay end to end under uvicorn: added time to first
                   token, CPU and memory per stream, and how many concurrent
                   streams it carries before token gaps grow, also against a
                   plain Django relay (bench/plain_relay.py)
    bench.page     the chat page on long blocks in Chromium: main-thread
                   tasks over 50 ms (run on its own: `python -m bench.page`)

Every figure is printed next to a baseline measured in the same run, so the
numbers compare like with like on whatever machine runs them. Results are
also written as JSON under bench/results/ (gitignored). Linux only: CPU time
and memory of the server processes are read from /proc.
"""
