"""What the tests and the benchmarks share: a fake OpenAI-compatible model
server (fake_upstream.py) and real servers on loopback (servers.py)."""
