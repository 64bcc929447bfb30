"""fetch: real downloads from a real HTTP server on 127.0.0.1 serving generated files."""

from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import pytest

from climviz.data.fetch import fetch_file, load_registry
from climviz.data.io import open_run, write_run
from climviz.errors import FetchError


class Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /truncated/NAME promises the full length but sends half and hangs up."""

    hits: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        Handler.hits.append(self.path)
        if self.path.startswith("/truncated/"):
            data = (self.server.root / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/slow/"):  # announces 1 MB, then trickles a byte a second
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(1_000_000))
            self.end_headers()
            try:
                for _ in range(1_000_000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(1.0)
            except OSError:  # the client gave up
                pass
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_run):
    root = tmp_path_factory.mktemp("served")
    (root / "train").mkdir()
    write_run(tiny_run, root / "train" / "data-2000-01-01-00-1_0.nc")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    httpd.root = root
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", root
    httpd.shutdown()
    httpd.server_close()


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


NAME = "train/data-2000-01-01-00-1_0.nc"


def cached_files(cache):
    return sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file())


def test_download_verified_then_reused(server, tmp_path, tiny_run):
    url, root = server
    cache = tmp_path / "cache"
    good = sha(root / NAME)
    path = fetch_file(NAME, base_url=url, sha256=good, cache_dir=cache)
    assert path == cache / NAME and sha(path) == good
    assert cached_files(cache) == [NAME]
    np.testing.assert_array_equal(open_run(path).TMQ.values, tiny_run.TMQ.values)
    before = len(Handler.hits)
    assert fetch_file(NAME, base_url=url, sha256=good, cache_dir=cache) == path
    assert len(Handler.hits) == before  # served from the cache


def test_hash_mismatch_leaves_nothing_in_the_cache(server, tmp_path):
    url, _ = server
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(FetchError, match=rf"data-2000-01-01-00-1_0\.nc: sha256 mismatch.*expected {wrong}"):
        fetch_file(NAME, base_url=url, sha256=wrong, cache_dir=cache)
    assert cached_files(cache) == []


def test_truncated_download_leaves_nothing_in_the_cache(server, tmp_path):
    url, root = server
    cache = tmp_path / "cache"
    with pytest.raises(FetchError, match="download failed or was truncated"):
        fetch_file(NAME, base_url=url + "truncated/", sha256=sha(root / NAME), cache_dir=cache)
    assert cached_files(cache) == []


def test_missing_remote_file(server, tmp_path):
    url, _ = server
    with pytest.raises(FetchError, match="404"):
        fetch_file("train/nope.nc", base_url=url, sha256="1" * 64, cache_dir=tmp_path)
    assert cached_files(tmp_path) == []


def test_unknown_hash_needs_explicit_permission(server, tmp_path):
    url, root = server
    with pytest.raises(FetchError, match="no known sha256"):
        fetch_file(NAME, base_url=url, cache_dir=tmp_path)
    path = fetch_file(NAME, base_url=url, cache_dir=tmp_path, allow_unverified=True)
    assert sha(path) == sha(root / NAME)


def test_registry_file(server, tmp_path):
    url, root = server
    reg = tmp_path / "registry.txt"
    reg.write_text(f"# ClimateNet files I checked\n{NAME} {sha(root / NAME)}\n")
    assert load_registry(reg) == {NAME: sha(root / NAME)}
    path = fetch_file(NAME, base_url=url, registry=reg, cache_dir=tmp_path / "c")
    assert sha(path) == sha(root / NAME)
    reg.write_text(f"{NAME} not-a-hash\n")
    with pytest.raises(FetchError, match=r"registry\.txt:1: expected 'name sha256'"):
        load_registry(reg)


def test_cli_fetch(server, tmp_path):
    url, root = server
    cache = tmp_path / "cache"
    ok = subprocess.run(
        [sys.executable, "-m", "climviz", "fetch", NAME, "--base-url", url, "--sha256", sha(root / NAME),
         "--cache-dir", str(cache)],
        capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert str(cache / NAME) in ok.stdout and sha(root / NAME) in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "climviz", "fetch", NAME, "--base-url", url, "--sha256", "f" * 64,
         "--cache-dir", str(tmp_path / "other")],
        capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 1 and "sha256 mismatch" in bad.stderr
    assert not (tmp_path / "other" / NAME).exists()


# ----------------------------------------------------------------------------- hostile names (issue 18.1)
@pytest.mark.parametrize("bad", ["../victim.txt", "../../x.nc", "train/../../victim.txt", "ABSOLUTE",
                                 "./train/x.nc", "train//x.nc", "~/x.nc", "train\\..\\..\\x.nc"])
def test_names_outside_the_cache_are_refused_before_any_byte(server, tmp_path, bad):
    url, root = server
    cache = tmp_path / "outer" / "inner" / "cache"
    cache.mkdir(parents=True)
    victim = tmp_path / "outer" / "victim.txt"
    victim.write_text("precious")
    name = str(tmp_path / "outer" / "victim.txt") if bad == "ABSOLUTE" else bad
    before = len(Handler.hits)
    with pytest.raises(FetchError, match=r"file name .* (absolute|component|backslash)") as err:
        fetch_file(name, base_url=url, cache_dir=cache, allow_unverified=True)
    assert repr(name) in str(err.value)
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "outer").rglob("*")) == ["cache", "inner", "victim.txt"]
    assert len(Handler.hits) == before        # nothing was even requested


def test_a_symlink_in_the_cache_cannot_lead_outside(server, tmp_path):
    url, root = server
    cache = tmp_path / "cache"
    cache.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (cache / "train").symlink_to(outside, target_is_directory=True)
    with pytest.raises(FetchError, match=rf"{NAME!r} resolves to .*elsewhere.* outside the cache"):
        fetch_file(NAME, base_url=url, cache_dir=cache, allow_unverified=True)
    assert list(outside.iterdir()) == []


def test_registry_with_an_escaping_name_is_refused(server, tmp_path):
    url, root = server
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    reg = tmp_path / "registry.txt"
    reg.write_text(f"{NAME} {sha(root / NAME)}\n../victim.txt {'a' * 64}\n")
    with pytest.raises(FetchError, match=r"registry\.txt:2: file name '\.\./victim\.txt'"):
        load_registry(reg)
    proc = subprocess.run(
        [sys.executable, "-m", "climviz", "fetch", "../victim.txt", "--base-url", url,
         "--allow-unverified", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("climviz fetch: error: file name '../victim.txt'")
    assert victim.read_text() == "precious" and not (tmp_path / "cache").exists()


# ----------------------------------------------------------------------------- slow servers (issue 18.2)
def test_a_trickling_server_is_cut_off_quickly(server, tmp_path):
    """1 MB announced, a byte a second: per-read timeouts never fire, the rate check does."""
    url, _ = server
    cache = tmp_path / "cache"
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"slow/x\.nc: download too slow: \d+ of 1000000 bytes"):
        fetch_file("x.nc", base_url=url + "slow/", cache_dir=cache, allow_unverified=True, timeout=2)
    assert time.monotonic() - t0 < 8
    assert cached_files(cache) == []           # the partial temporary is gone too


def test_overall_time_limit(server, tmp_path):
    url, _ = server
    cache = tmp_path / "cache"
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"slow/x\.nc: download took longer than the overall limit of 2 s"):
        fetch_file("x.nc", base_url=url + "slow/", cache_dir=cache, allow_unverified=True, timeout=30,
                   min_rate=0, max_time=2)
    assert time.monotonic() - t0 < 8
    assert cached_files(cache) == []


def test_cli_timeout_bounds_a_trickling_server(server, tmp_path):
    url, _ = server
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "climviz", "fetch", "x.nc", "--base-url", url + "slow/", "--timeout", "3",
         "--allow-unverified", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1 and time.monotonic() - t0 < 60
    assert "climviz fetch: error:" in proc.stderr and "download too slow" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cached_files(tmp_path / "cache") == []
