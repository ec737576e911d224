"""The command line: ``resilience demo`` and ``resilience fetch`` (also ``python -m resilience``)."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from resilience import http
from resilience._demo_server import DemoServer
from resilience.cli import _Events, main


def error_lines(err: str) -> list[str]:
    """The stderr lines, after checking they are one ``resilience: error:`` line and no traceback."""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert 1 == len(lines), err
    assert lines[0].startswith("resilience: error: "), err
    return lines


# --------------------------------------------------------------------------- demo


def test_demo_prints_events_as_they_happen_then_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    """A short demo exits 0 on its own, prints retries and a breaker opening, then a row per endpoint."""
    log = logging.getLogger("resilience")
    handlers, level = list(log.handlers), log.level
    started = time.monotonic()
    assert 0 == main(["demo", "--seconds", "1.5"])
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert "" == err
    assert took < 1.5 + 4.0  # every call in flight is bounded by its deadline (2.5 s at most)
    assert re.search(r"^\s+\d+\.\d\ds  users-api\s+status_503 on attempt 1/3; retrying in", out, re.M), out
    assert "inventory-api  circuit closed -> open: calls fail fast for 1 s" in out  # /burst starts with 503s
    header = "endpoint       calls    ok %  retries  p50 ms  p95 ms  p99 ms  breaker"
    assert header in out
    for name in ("users-api", "inventory-api", "payments", "search-api", "telemetry", "reports-api"):
        assert re.search(rf"^{name}\s+\d+\s+[\d.]+%\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s+\S+$", out, re.M), (name, out)
    assert out.rstrip().splitlines()[-1].startswith("Look at: ")
    assert (handlers, level) == (log.handlers, log.level)


def test_demo_events_stop_quietly_when_the_output_is_gone() -> None:
    """An event line that cannot be written (the reader left) marks the output broken instead of raising."""

    class Gone(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    events = _Events(interval=1.0, out=Gone())
    events.emit("users-api", "retry", "status_503 on attempt 1/3")
    events.emit("payments", "retry", "status_500 on attempt 1/3")
    assert events.broken.is_set()


@pytest.mark.parametrize("seconds", ["0", "-1", "abc", "nan", "3601"])
def test_demo_rejects_bad_seconds(capsys: pytest.CaptureFixture[str], seconds: str) -> None:
    """--seconds must be a number in (0, 3600]: anything else is one error line and exit code 2."""
    assert 2 == main(["demo", "--seconds", seconds])
    out, err = capsys.readouterr()
    assert "" == out
    assert repr(seconds) in error_lines(err)[0]


# --------------------------------------------------------------------------- fetch


def test_fetch_prints_a_summary_and_one_line_per_failure(
    http_server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Some URLs failing: exit code 1, the counts, the error types and one line per failed URL."""
    urls = [http_server.url("/ok"), http_server.url("/status/404"), http_server.url("/status/503")]
    assert 1 == main(["fetch", "--attempts", "2", *urls])
    out, err = capsys.readouterr()
    assert "" == err
    lines = out.splitlines()
    for row in ("total         3", "ok            1", "failed        2", "success rate  33.3%"):
        assert row in lines
    assert re.search(r"^  HTTPError\s+2$", out, re.M), out
    assert f"  GET {urls[1]}  HTTPError: 404 Not Found  (1 attempt(s), " in out
    assert f"  GET {urls[2]}  HTTPError: 503 Service Unavailable  (2 attempt(s), " in out
    assert 2 == http_server.hits["/status/503"]  # --attempts applies


def test_fetch_exits_0_when_every_url_answers(http_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    """All URLs 2xx (with the default per-host policies): exit code 0, no failure section."""
    assert 0 == main(["fetch", http_server.url("/ok"), http_server.url("/text")])
    out, _ = capsys.readouterr()
    assert "ok            2" in out.splitlines()
    assert "failed\n" not in out


def test_fetch_reads_a_file_skipping_comments_and_blank_lines(
    http_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--file: one URL per line, surrounding blanks stripped, blank lines and # comments skipped."""
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# the health checks\n\n{http_server.url('/ok')}\n   \n  {http_server.url('/ok?x=1')}  \n")
    assert 0 == main(["fetch", "--file", str(urls)])
    assert "total         2" in capsys.readouterr().out.splitlines()
    assert 2 == http_server.hits["/ok"]


def test_fetch_reads_urls_from_stdin(
    http_server: DemoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--file - reads the URLs from standard input, and adds them to those given as arguments."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{http_server.url('/ok')}\n# done\n"))
    assert 1 == main(["fetch", "-f", "-", http_server.url("/status/404")])
    assert "total         2" in capsys.readouterr().out.splitlines()


def test_fetch_out_writes_one_json_line_per_url_in_input_order(
    http_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out FILE: one JSON object per URL, in input order, with the outcome of each."""
    urls = [http_server.url("/status/404"), http_server.url("/ok"), http_server.url("/status/410")]
    out = tmp_path / "results.jsonl"
    assert 1 == main(["fetch", "--out", str(out), *urls])
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert urls == [record["url"] for record in records]
    assert [False, True, False] == [record["ok"] for record in records]
    assert [404, 200, 410] == [record["status"] for record in records]
    assert f"wrote 3 line(s) to {out}" in capsys.readouterr().out


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_fetch_out_write_failure_still_prints_the_summary(
    http_server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out to a full disk: the summary is printed, then one error line naming --out, exit code 1."""
    assert 1 == main(["fetch", "--out", "/dev/full", http_server.url("/ok")])
    out, err = capsys.readouterr()
    assert "ok            1" in out.splitlines()
    assert ["resilience: error: --out '/dev/full': cannot write it: No space left on device"] == error_lines(err)


def test_fetch_out_that_cannot_be_opened_is_rejected_before_fetching(
    http_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out FILE that cannot be opened for writing: one error line, exit code 2, nothing fetched."""
    path = tmp_path / ("x" * 300)  # a name longer than any file system allows
    assert 2 == main(["fetch", "--out", str(path), http_server.url("/ok")])
    out, err = capsys.readouterr()
    assert "" == out
    assert f"--out {str(path)!r}: cannot write to it: " in error_lines(err)[0]
    assert 0 == http_server.hits["/ok"]


def test_fetch_out_check_leaves_no_file_when_the_fetch_fails_early(tmp_path: Path) -> None:
    """The --out check creates no file of its own: a run stopped by bad input leaves nothing behind."""
    path = tmp_path / "results.jsonl"
    assert 2 == main(["fetch", "--out", str(path), "--concurrency", "0", "http://x.example/"])
    assert 2 == main(["fetch", "--out", str(path), "ftp://x.example/"])
    assert not path.exists()


def test_fetch_json_prints_the_summary_and_failures(
    http_server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json: one JSON object on stdout with the summary and the failed items."""
    assert 1 == main(["fetch", "--json", http_server.url("/ok"), http_server.url("/status/404")])
    report = json.loads(capsys.readouterr().out)
    assert (2, 1, {"HTTPError": 1}) == (
        report["summary"]["total"],
        report["summary"]["ok"],
        report["summary"]["by_error_type"],
    )
    assert [(1, 404)] == [(item["index"], item["status"]) for item in report["failed"]]


def test_fetch_sends_the_method_asked_for(http_server: DemoServer, tmp_path: Path) -> None:
    """--method post (any case) sends POST requests."""
    out = tmp_path / "results.jsonl"
    assert 0 == main(["fetch", "--method", "post", "--out", str(out), http_server.url("/echo")])
    assert "POST" == json.loads(out.read_text())["data"]["method"]


def test_fetch_sends_any_http_token_method(http_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    """--method takes any HTTP token, such as M-SEARCH (the demo server answers it 501, naming it)."""
    assert 1 == main(["fetch", "-X", "M-SEARCH", http_server.url("/echo")])
    out = capsys.readouterr().out
    assert f"  M-SEARCH {http_server.url('/echo')}  HTTPError: 501 Unsupported method ('M-SEARCH')" in out


def test_fetch_reads_a_file_with_a_byte_order_mark(
    http_server: DemoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A URL file saved with a UTF-8 BOM reads like one without."""
    urls = tmp_path / "urls.txt"
    urls.write_bytes(b"\xef\xbb\xbf" + http_server.url("/ok").encode() + b"\r\n")
    assert 0 == main(["fetch", "--file", str(urls)])
    assert "ok            1" in capsys.readouterr().out.splitlines()


def test_fetch_reads_stdin_with_a_byte_order_mark(
    http_server: DemoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """URLs piped in with a leading BOM read like ones without."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff" + http_server.url("/ok") + "\n"))
    assert 0 == main(["fetch", "-f", "-"])
    assert "ok            1" in capsys.readouterr().out.splitlines()


def test_fetch_lists_at_most_20_failures(http_server: DemoServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Beyond 20 failed URLs, the rest are counted in one line."""
    urls = [http_server.url(f"/status/404?n={n}") for n in range(25)]
    assert 1 == main(["fetch", *urls])
    out = capsys.readouterr().out
    assert 20 == out.count("HTTPError: 404 Not Found")
    assert "  ... 5 more (all of them with --out FILE or --json)" in out.splitlines()


BAD_INPUT = {
    "missing file": (["fetch", "--file", "/no/such/urls.txt"], "--file '/no/such/urls.txt': no such file"),
    "ftp URL": (["fetch", "ftp://x"], "not an http:// or https:// URL with a host: 'ftp://x' (argument 1)"),
    "no scheme": (["fetch", "notaurl"], "'notaurl'"),
    "no host": (["fetch", "http://"], "'http://'"),
    "bad port": (["fetch", "http://x:abc/"], "'http://x:abc/'"),
    "concurrency 0": (["fetch", "-c", "0", "http://x"], "--concurrency must be an integer from 1 to 1000, got '0'"),
    "concurrency abc": (["fetch", "--concurrency", "abc", "http://x"], "--concurrency must be an integer"),
    "timeout 3 parts": (["fetch", "--timeout", "1,2,3", "http://x"], "--timeout must be CONNECT,READ seconds"),
    "timeout -1": (["fetch", "--timeout", "-1", "http://x"], "--timeout must be a number of seconds > 0, got '-1'"),
    "timeout abc": (["fetch", "--timeout", "abc", "http://x"], "--timeout must be a number of seconds > 0"),
    "timeout 1,0": (["fetch", "--timeout", "1,0", "http://x"], "--timeout must be a number of seconds > 0, got '0'"),
    "deadline 0": (["fetch", "--deadline", "0", "http://x"], "--deadline must be a number of seconds > 0, got '0'"),
    "deadline 1e300": (["fetch", "--deadline", "1e300", "http://x"], "--deadline must be at most 86400 seconds"),
    "timeout 1,1e9": (["fetch", "--timeout", "1,1e9", "http://x"], "--timeout must be at most 86400 seconds"),
    "empty out": (["fetch", "--out", "", "http://x"], "--out must be a file name, got ''"),
    "attempts 0": (["fetch", "--attempts", "0", "http://x"], "--attempts must be an integer from 1 to 100, got '0'"),
    "bad method": (["fetch", "--method", "G T", "http://x"], "--method must be an HTTP method name"),
    "out dir missing": (["fetch", "--out", "/no/such/dir/r.jsonl", "http://x"], "no such directory '/no/such/dir'"),
    "unknown option": (["fetch", "--bogus", "http://x"], "unrecognized arguments: --bogus"),
    "unknown command": (["bogus"], "invalid choice: 'bogus'"),
    "no command": ([], "choose a command: demo, fetch"),
    "no URLs": (["fetch"], "no URLs to fetch"),
}


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_error_line_and_exit_code_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """Bad input is caught before anything is sent: one line on stderr naming the problem, exit code 2."""
    assert 2 == main(argv)
    out, err = capsys.readouterr()
    assert "" == out
    assert message in error_lines(err)[0]


def test_a_bad_url_in_a_file_is_reported_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed URL in --file names the file and line, and how many more bad ones there are."""
    urls = tmp_path / "urls.txt"
    urls.write_text("http://ok.example\n# fine\nftp://x\nnot a url\n")
    assert 2 == main(["fetch", "-f", str(urls)])
    line = error_lines(capsys.readouterr().err)[0]
    assert line.endswith(f"'ftp://x' ({urls} line 3) (and 1 more bad URL(s))")


def test_an_unexpected_error_is_one_line_and_exit_code_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An exception nobody expected: its type and message on one line, exit code 1, no traceback."""

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(http, "fetch_all", broken)
    assert 1 == main(["fetch", "http://x.example/"])
    assert ["resilience: error: RuntimeError: disk on fire second line"] == error_lines(capsys.readouterr().err)


def test_help_prints_usage_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """--help works as usual: the usage on stdout, exit code 0."""
    assert 0 == main(["fetch", "--help"])
    assert capsys.readouterr().out.startswith("usage: resilience fetch ")


# --------------------------------------------------------------------------- as a program


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resilience", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_python_m_resilience_runs_the_cli(http_server: DemoServer) -> None:
    """`python -m resilience fetch` runs the command line: summary on stdout, exit code 1 for a failed URL."""
    done = run_module("fetch", http_server.url("/ok"), http_server.url("/status/404"))
    assert (1, "") == (done.returncode, done.stderr)
    assert "failed        1" in done.stdout.splitlines()


def test_python_m_resilience_prints_urls_an_ascii_terminal_cannot_show(http_server: DemoServer) -> None:
    """On an ASCII-only stdout a non-ASCII URL is printed escaped: the whole table, no traceback."""
    url = http_server.url("/status/404?q=caf\u00e9")
    done = subprocess.run(
        [sys.executable, "-m", "resilience", "fetch", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert (1, "") == (done.returncode, done.stderr)
    assert "  GET " + url.replace("\u00e9", "\\xe9") + "  HTTPError: 404" in done.stdout


def test_python_m_resilience_bad_input_has_no_traceback() -> None:
    """`python -m resilience` with bad input: one error line, exit code 2, no traceback."""
    done = run_module("fetch", "--timeout", "1,2,3", "http://x")
    assert (2, "") == (done.returncode, done.stdout)
    assert ["resilience: error: --timeout must be CONNECT,READ seconds or one number, got '1,2,3'"] == error_lines(
        done.stderr
    )


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_prints_the_partial_summary_and_exits_130(http_server: DemoServer) -> None:
    """Ctrl-C during fetch: the summary of what finished (the rest "Interrupted"), one error line, exit code 130."""
    child = subprocess.Popen(
        [sys.executable, "-m", "resilience", "fetch", "--progress", http_server.url("/ok"), http_server.url("/hang")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    seen = ""
    while "fetch 1/2" not in seen:  # the progress line: /ok is done, /hang is in flight
        char = child.stderr.read(1)
        assert char, seen
        seen += char
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert 130 == child.returncode
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "resilience: error: interrupted: the summary covers the URLs that finished"
    assert "ok            1" in out.splitlines()
    assert f"  GET {http_server.url('/hang')}  Interrupted: " in out
