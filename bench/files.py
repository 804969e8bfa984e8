"""Files: what an upload and a message with a PDF cost the server, in time
and memory, beside Django's stock handling of the same upload.

    python -m bench.files [--quick] [--no-pin]

The issue's requirement: the time and peak memory of uploading a 20 MB file
and of sending a message with a 10 MB PDF (its text read included), and the
process's RSS must not grow by more than the file's size while it streams in.

The app runs as it ships (chatstream.asgi under uvicorn, DEBUG off, one
process on CPU 0) on PostgreSQL (BENCH_FILES_DATABASE_URL, dropped and made
again each run), with MEDIA_ROOT in a temporary folder and the fake
upstream (20 tokens at once) as its model; LLM_CONTEXT_TOKENS is 128,000, a
current model's window, so a long document's text goes to the model rather
than being cut to the default 8,000 tokens. The peer (bench/plain_upload.py):
a plain Django view that saves request.FILES["file"] with default_storage,
under the same server on the same CPU. The client streams each body from a
file on disk (httpx, with a Content-Length), from the other CPU.

Memory is the server process's, from /proc: its peak (VmHWM) is reset before
each request (`clear_refs` 5) and read after it, so "peak" is the exact
high-water mark of that one request; growth is that peak less the RSS just
before. VmRSS is also sampled every 2 ms, to say when in the request the
peak came. The PDF reader is a child of the server: its peak is its VmHWM
as last seen while polling it every 2 ms (a lower bound), and the same
module run once more by the bench reads its own VmHWM as it ends (the exact
figure); its CPU time is the server's children's CPU (cutime + cstime),
which counts it once it has been waited for.
"""

import argparse
import json
import os
import random
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median

import httpx
import psycopg
from PIL import Image

from harness import fake_upstream
from tests.pdfs import make_pdf

from . import procs, report
from .rig import app_env, app_server, fresh_database, prepare_database

MIB = 1024 * 1024
FILE_BYTES = 20 * MIB - 4096  # just under CHATSTREAM_MAX_FILE_BYTES (20 MiB)
SIZES = {"full": {"uploads": 5, "pdf_rounds": 3}, "quick": {"uploads": 2, "pdf_rounds": 1}}
DATABASE_URL = os.environ.get("BENCH_FILES_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_files")
SAMPLE_S = 0.002
PEER_APPLICATION = "bench.plain_upload:application"
WORDS = "the of and to in is that for it as with was on be by this are from at or an which report figure"


# --- memory, from /proc ---------------------------------------------------------------------------


def status(pid: int) -> dict[str, int]:
    """The VmRSS and VmHWM lines of /proc/<pid>/status, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def children_cpu_seconds(pid: int) -> float:
    """CPU time of the process's children it has waited for (cutime + cstime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # fields 16 and 17 of stat(5)


def _pids() -> set[int]:
    return {int(name) for name in os.listdir("/proc") if name.isdigit()}


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


class Watch:
    """The server's memory over one request (see the module docstring)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.child_peaks: dict[int, int] = {}
        self.child_seen: dict[int, list[float]] = {}  # first and last seen, from the start
        self._stop = threading.Event()

    def __enter__(self) -> "Watch":
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.before = status(self.pid)["VmRSS"]
        self.children_cpu = children_cpu_seconds(self.pid)
        self.cpu = procs.cpu_seconds(self.pid)
        self._known = _pids()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.wall = time.perf_counter() - self.started
        self._stop.set()
        self._thread.join()
        self.peak = status(self.pid)["VmHWM"]
        self.children_cpu = children_cpu_seconds(self.pid) - self.children_cpu
        self.cpu = procs.cpu_seconds(self.pid) - self.cpu

    def _sample(self) -> None:
        while not self._stop.is_set():
            now = time.perf_counter() - self.started
            self.samples.append((now, status(self.pid)["VmRSS"]))
            for pid in _pids() - self._known:
                if pid not in self.child_peaks and _parent(pid) != self.pid:
                    self._known.add(pid)  # another's
                    continue
                try:
                    # The last reading, not the highest: until it execs, a child
                    # made by vfork shows the server's own memory.
                    self.child_peaks[pid] = status(pid).get("VmHWM") or self.child_peaks.get(pid, 0)
                except OSError:
                    continue  # it has ended
                self.child_seen.setdefault(pid, [now, now])[1] = now
            time.sleep(SAMPLE_S)

    def figures(self) -> dict:
        at, highest = max(self.samples, key=lambda sample: sample[1], default=(0.0, 0))
        return {
            "wall_s": self.wall,
            "rss_before": self.before,
            "rss_peak": self.peak,
            "growth": self.peak - self.before,
            "peak_seen_at": at / self.wall if self.wall else None,  # share of the request's time
            "samples": len(self.samples),
            "cpu_s": self.cpu,
            "children_cpu_s": self.children_cpu,
            "child_seen_s": max(self.child_seen.values(), key=lambda seen: seen[1] - seen[0], default=None),
            "child_peak": max(self.child_peaks.values(), default=None),
        }


# --- the files --------------------------------------------------------------------------------------


def make_inputs(folder: Path) -> dict[str, Path]:
    """A 20 MB text file (a log), a 20 MB PNG (noise: a photo PNG barely
    compresses either), an image-heavy 10 MB PDF (a scanned report: 10 pages
    of text over a 10 MB image) and a text-heavy one (a long manual: 3,500
    pages of text, of which the reader takes the first 1,000,000 characters)."""
    rng = random.Random(26)
    paths = {name: folder / name for name in ("log.txt", "noise.png", "scanned.pdf", "manual.pdf")}
    with open(paths["log.txt"], "w") as out:
        written = 0
        while written < FILE_BYTES:
            line = f"2026-12-07T09:{written % 60:02d}:00Z INFO " + " ".join(rng.choices(WORDS.split(), k=14)) + "\n"
            out.write(line[: FILE_BYTES - written])
            written += len(line[: FILE_BYTES - written])
    width = 2048
    height = (FILE_BYTES - 64 * 1024) // (width * 3 + 1)  # a noise PNG is its pixels and a byte a row
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(paths["noise.png"], compress_level=1)
    paths["scanned.pdf"].write_bytes(make_pdf([_page(rng) for _ in range(10)], image_bytes=10_000_000))
    paths["manual.pdf"].write_bytes(make_pdf([_page(rng) for _ in range(3500)]))
    return paths


def _page(rng: random.Random) -> str:
    """About 3,000 characters: 45 lines of 12 words, a printed page."""
    return "\n".join(" ".join(rng.choices(WORDS.split(), k=12)).capitalize() + "." for _ in range(45))


CONTENT_TYPES = {".txt": "text/plain", ".png": "image/png", ".pdf": "application/pdf"}


def post_file(client: httpx.Client, url: str, path: Path, *, chunked: bool = False) -> httpx.Response:
    """The file as a multipart body streamed from disk: with its length
    (httpx's own encoding, as a browser sends it) or `chunked`, with none."""
    if chunked:
        boundary = "bench-files-boundary"
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return client.post(url, content=_multipart_chunks(path, boundary), headers=headers)
    with open(path, "rb") as body:
        return client.post(url, files={"file": (path.name, body, CONTENT_TYPES[path.suffix])})


def _multipart_chunks(path: Path, boundary: str) -> Iterator[bytes]:
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        f"Content-Type: {CONTENT_TYPES[path.suffix]}\r\n\r\n"
    ).encode()
    with open(path, "rb") as body:
        while chunk := body.read(64 * 1024):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


# --- the run ---------------------------------------------------------------------------------------


class Servers(procs.Started):
    """The app, the peer and the fake upstream, with an API key for the app."""

    def __init__(self, work_dir: Path, layout: dict) -> None:
        super().__init__()
        self.work_dir, self.layout = work_dir, layout

    def _start(self) -> None:
        tmp, measured = self.work_dir, self.layout["measured"]
        upstream = fake_upstream.service(
            procs.free_port(), log_dir=tmp, cpus=self.layout["harness"], first_token_delay=0, pace=0, tokens=20
        )
        self.upstream = self.stack.enter_context(upstream)
        env = {
            **app_env(tmp, self.upstream.port),
            "DATABASE_URL": DATABASE_URL,
            "MEDIA_ROOT": str(tmp / "media"),
            "LLM_CONTEXT_TOKENS": "128000",
        }
        fresh_database(DATABASE_URL)
        key = prepare_database(env)
        self.app = self.stack.enter_context(app_server("uvicorn", procs.free_port(), env, log_dir=tmp, cpus=measured))
        peer_env = {**os.environ, "PLAIN_UPLOAD_MEDIA_ROOT": str(tmp / "plain-media")}
        peer = app_server(
            "uvicorn", procs.free_port(), peer_env, log_dir=tmp, cpus=measured, application=PEER_APPLICATION
        )
        self.peer = self.stack.enter_context(peer)
        headers = {"Authorization": f"Bearer {key}"}
        self.http = self.stack.enter_context(httpx.Client(headers=headers, timeout=120))

    def url(self, server: str, path: str) -> str:
        port = self.app.port if server == "app" else self.peer.port
        return f"http://{procs.HOST}:{port}{path}"

    def upload(self, server: str, path: Path, *, chunked: bool = False) -> tuple[dict, dict]:
        """One upload, watched: the server's answer and the figures."""
        service = self.app if server == "app" else self.peer
        url = self.url(server, "/api/files" if server == "app" else "/upload")
        with Watch(service.pid) as watch:
            response = post_file(self.http, url, path, chunked=chunked)
        if response.status_code != 201:
            raise RuntimeError(f"{server} answered {response.status_code} to {path.name}: {response.text[:500]}")
        return response.json(), watch.figures()


# What each 20 MB file is sent to: (server, chunked). The peer cannot take a
# chunked body: Django's multipart parser reads one without a length as empty.
UPLOADS = {
    "log.txt": (("app", False), ("peer", False), ("app", True)),
    "noise.png": (("app", False), ("peer", False)),
}


def uploads(servers: Servers, inputs: dict[str, Path], count: int) -> dict:
    """Each 20 MB file to the app and to the peer, alternated: the first of
    each (cold: the server's first file of its kind) apart, then `count`."""
    results = {}
    for name, targets in UPLOADS.items():
        size = inputs[name].stat().st_size
        entries = [
            {"file": name, "server": server, "chunked": chunked, "size": size, "runs": []}
            for server, chunked in targets
        ]
        for round_ in range(count + 1):
            for entry in entries:
                figures = servers.upload(entry["server"], inputs[name], chunked=entry["chunked"])[1]
                if round_ == 0:
                    entry["cold"] = figures
                else:
                    entry["runs"].append(figures)
        results[name] = entries
    return results


def pdf_messages(servers: Servers, inputs: dict[str, Path], rounds: int) -> dict:
    """Each PDF uploaded to the app and sent in a new conversation's message,
    `rounds` times; and its reader run alone once."""
    results = {}
    for name in ("scanned.pdf", "manual.pdf"):
        runs = []
        for _ in range(rounds):
            answer, upload = servers.upload("app", inputs[name])
            conversation = servers.http.post(servers.url("app", "/api/conversations"), json={}).json()["id"]
            body = {"content": "Summarise the document.", "files": [answer["id"]]}
            with Watch(servers.app.pid) as watch:
                done = stream_message(servers, conversation, body)
            stored = stored_file(answer["id"], conversation)
            runs.append({"upload": upload, "message": watch.figures() | done, "file": stored})
        results[name] = {"size": inputs[name].stat().st_size, "runs": runs, "alone": reader_alone(inputs[name])}
    return results


def stream_message(servers: Servers, conversation: str, body: dict) -> dict:
    """POST the message and read its events to `done`: the time to each."""
    started, first, event = time.perf_counter(), None, ""
    url = servers.url("app", f"/api/conversations/{conversation}/messages")
    with servers.http.stream("POST", url, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if event == "delta" and first is None:
                    first = time.perf_counter() - started
            elif line.startswith("data:") and event in ("done", "error"):
                if event == "error":
                    raise RuntimeError(f"the answer ended with an error: {line}")
                return {"first_delta_s": first, "done_s": time.perf_counter() - started, "done": json.loads(line[5:])}
    raise RuntimeError("the answer ended without a done event")


def stored_file(file_id: str, conversation: str) -> dict:
    """What the reader found in the file, and how much of it the answer's
    prompt carried (its file_cuts say when it was cut to fit)."""
    with psycopg.connect(DATABASE_URL) as db:
        row = db.execute(
            "SELECT pages, pages_read, text_chars FROM conversations_storedfile WHERE id = %s", (file_id,)
        ).fetchone()
        cuts = db.execute(
            "SELECT file_cuts FROM conversations_turn WHERE conversation_id = %s AND role = 'assistant'",
            (conversation,),
        ).fetchone()
    assert row is not None and cuts is not None
    found = dict(zip(("pages", "pages_read", "text_chars"), row, strict=True))
    return found | {"chars_sent": min([cut["chars_sent"] for cut in cuts[0]], default=found["text_chars"])}


# The reader's module run as `python -m` runs it, then its own peak read from
# /proc/self/status: wait4's ru_maxrss would be no use, as it counts the
# memory of the process it was forked from (the bench's, larger) too.
READER_ALONE = """
import runpy, sys
sys.argv.pop(0)
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
sys.stderr.write(peak.split()[1])
"""


def reader_alone(path: Path) -> dict:
    """The server's PDF reader, the same module with the server's limits,
    run by the bench: its wall time, CPU time and exact peak RSS."""
    from conversations.files import pdf  # no Django needed: the command and its environment

    command = [procs.PYTHON, "-c", READER_ALONE, pdf.CHILD_MODULE, str(path), "500", str(pdf.MAX_CHARS), "30"]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as peak, open(os.devnull, "wb") as devnull:
        child = procs.popen(command, env=pdf.child_environment(), stdout=devnull, stderr=peak)
        _, status_, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status_)
        peak.seek(0)
        return {"wall_s": wall, "peak": int(peak.read()) * 1024, "cpu_s": usage.ru_utime + usage.ru_stime}


def run(*, quick: bool = False, pin: bool = True) -> dict:
    size = SIZES["quick" if quick else "full"]
    layout = procs.cpu_layout(pin)
    if layout["harness"]:
        os.sched_setaffinity(0, layout["harness"])  # the client, beside the upstream
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        work_dir = Path(tmp)
        inputs = make_inputs(work_dir)
        with Servers(work_dir, layout) as servers:
            upload_figures = uploads(servers, inputs, size["uploads"])
            pdf_figures = pdf_messages(servers, inputs, size["pdf_rounds"])
    return {"size": size, "layout": procs.describe_layout(layout), "uploads": upload_figures, "pdfs": pdf_figures}


# --- the tables ------------------------------------------------------------------------------------


def _mib(value: float | None) -> str:
    return report.fmt(None if value is None else value / MIB, 1)


def _ms(value: float | None) -> str:
    return report.fmt(None if value is None else value * 1000, 0)


def print_results(results: dict) -> None:
    print(
        f"\n== Uploads of 20 MiB less 4 KiB, {results['size']['uploads']} each after a first (cold) one; "
        f"chatstream (uvicorn, PostgreSQL) vs a plain Django view (default_storage) ({results['layout']})"
    )
    rows = []
    for entries in results["uploads"].values():
        rows += [_upload_row(entry) for entry in entries]
        rows.append(_ratio_row(*entries[:2]))
    headers = [
        "file",
        "server",
        "ms p50 (min–max)",
        "CPU ms mean",
        "RSS before / peak MiB",
        "growth MiB p50 / max / cold",
        "peak at",
        "growth ≤ file",
    ]
    print(report.table(headers, rows))
    print(_overall(results, "app"))
    print(_overall(results, "peer"))
    print_pdfs(results)


def _upload_row(entry: dict) -> list[str]:
    runs = entry["runs"]
    times, growths = [run["wall_s"] for run in runs], [run["growth"] for run in runs]
    worst = max([*growths, entry["cold"]["growth"]])
    server = "chatstream" if entry["server"] == "app" else "plain Django"
    return [
        entry["file"],
        server + (", chunked" if entry["chunked"] else ""),
        f"{_ms(median(times))} ({_ms(min(times))}–{_ms(max(times))})",
        _ms(_mean_cpu(runs)),
        f"{_mib(median(run['rss_before'] for run in runs))} / {_mib(median(run['rss_peak'] for run in runs))}",
        f"{_mib(median(growths))} / {_mib(max(growths))} / {_mib(entry['cold']['growth'])}",
        f"{median(run['peak_seen_at'] for run in runs) * 100:.0f} %",
        "yes" if worst <= entry["size"] else "NO",
    ]


def _ratio_row(app: dict, peer: dict) -> list[str]:
    """chatstream's medians over the peer's; memory as the peak (growth
    itself is a few MiB either way: allocator noise, not a figure to divide)."""

    def ratio(key: str) -> str:
        return f"{median(r[key] for r in app['runs']) / median(r[key] for r in peer['runs']):.2f}x"

    cpu = f"{_mean_cpu(app['runs']) / _mean_cpu(peer['runs']):.2f}x"
    return [app["file"], "chatstream / plain", ratio("wall_s"), cpu, ratio("rss_peak"), "", "", ""]


def _mean_cpu(runs: list[dict]) -> float:
    """The runs' CPU time over their number: /proc counts it in ticks of
    10 ms, too coarse for one upload's median."""
    return sum(run["cpu_s"] for run in runs) / len(runs)


def _overall(results: dict, server: str) -> str:
    """From the server's RSS before its first upload to its highest peak over all of them."""
    entries = [entry for entries in results["uploads"].values() for entry in entries if entry["server"] == server]
    start = entries[0]["cold"]["rss_before"]
    peak = max(run["rss_peak"] for entry in entries for run in [entry["cold"], *entry["runs"]])
    uploads_ = sum(1 + len(entry["runs"]) for entry in entries)
    name = "chatstream" if server == "app" else "plain Django"
    return (
        f"{name}: RSS {_mib(start)} MiB before its first upload, {_mib(peak)} MiB at the highest over all "
        f"{uploads_}: +{_mib(peak - start)} MiB, {(peak - start) / FILE_BYTES * 100:.0f} % of one file"
    )


def print_pdfs(results: dict) -> None:
    pdfs = results["pdfs"]
    print(
        f"\n== A PDF uploaded, {results['size']['pdf_rounds']} each: its text read by the reader's process "
        "(seen: from the first to the last time the bench saw it; alone: the same module run by the bench)"
    )
    rows = []
    for name, entry in pdfs.items():
        runs, alone, stored = entry["runs"], entry["alone"], entry["runs"][0]["file"]
        uploads_ = [run["upload"] for run in runs]
        seen = [upload["child_seen_s"][1] - upload["child_seen_s"][0] for upload in uploads_]
        rows.append(
            [
                f"{name} ({entry['size'] / 1e6:.1f} MB)",
                f"{stored['pages_read']}/{stored['pages']} · {stored['text_chars']:,}",
                _ms(median(upload["wall_s"] for upload in uploads_)),
                f"{_ms(median(seen))} / {_ms(alone['wall_s'])}",
                f"{median(upload['children_cpu_s'] for upload in uploads_):.2f} / {alone['cpu_s']:.2f}",
                f"{_mib(max(upload['child_peak'] or 0 for upload in uploads_))} / {_mib(alone['peak'])}",
                _ms(median(upload["cpu_s"] for upload in uploads_)),
                _mib(max(upload["growth"] for upload in uploads_)),
            ]
        )
    headers = [
        "PDF",
        "pages read · chars",
        "upload ms p50",
        "reader ms seen / alone",
        "reader CPU s / alone",
        "reader peak MiB polled / alone",
        "server CPU ms",
        "server growth MiB max",
    ]
    print(report.table(headers, rows))
    print("\n== Then a message that sends it, POST to `done` (fake upstream: 20 tokens at once)")
    rows = []
    for name, entry in pdfs.items():
        messages = [run["message"] for run in entry["runs"]]
        rows.append(
            [
                name,
                f"{entry['runs'][0]['file']['chars_sent']:,}",
                _ms(median(message["first_delta_s"] for message in messages)),
                _ms(median(message["done_s"] for message in messages)),
                _ms(median(message["cpu_s"] for message in messages)),
                _mib(max(message["growth"] for message in messages)),
            ]
        )
    headers = ["PDF", "chars in the prompt", "first delta ms p50", "done ms p50", "server CPU ms", "growth MiB max"]
    print(report.table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(quick=args.quick, pin=args.pin)
    print_results(results)
    print(f"\nresults: {report.save({'files': results}, 'bench-files')}  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
