"""Worst-case decoding time per line at ``--max-line-bytes`` for each Loghub layout, printed as JSON.

A layout (``--log-format``) decides how long one line can take: the worker decodes each record on its poll
loop, so a slow line stalls its partition. For each of the sixteen layouts Loghub publishes (logparser's
benchmark settings; Zhu et al., ICSE-SEIP 2019, https://github.com/logpai/loghub) this measures

* **ours**: :class:`pipeline.stages.decoding.LogFormat`, the worst matching time over a set of adversarial
  line shapes of ``--max-bytes`` (64 KiB: words, no spaces, many ``:`` or ``[``, replacement characters,
  lone surrogates, one long space run, the layout's own punctuation, a real line's prefix followed by
  junk, the system's real lines joined into one), next to the typical time per line on the system's real
  2,000 lines (the eight systems of ``loghub-2k``);
* **reference**: the logparser-style compilation (``generate_logformat_regex``: each field a lazy ``.*?``,
  each space run ``\\s+``, other text as regex), which backtracks in polynomial time on a line that does
  not fit. It is timed at growing sizes (from 8 bytes, by half each time) until one call takes ``--cap`` seconds
  (a timer stops it) or the size reaches 64 KiB. A shape stopped by the cap is reported with the size it
  reached, its growth exponent (``t ~ n^k``, fitted on the last sizes) and the extrapolated time at 64 KiB;
  the reference's worst case is then ``--cap`` seconds as a lower bound (``worst_is: at_least``).

Each time is the best of ``--rounds`` calls (other load only ever slows a run); ``ratio`` is reference over
ours for the worst case.

    python -m benchmarks.decoder_worst_case [--max-bytes 65536] [--cap 1.0] [--layouts HDFS,Linux]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.loghub import LOG_FORMATS, LOGHUB_LAYOUTS, raw_log_path
from pipeline.stages.layouts import LogFormat

LAYOUTS = LOGHUB_LAYOUTS


def logparser_regex(fmt: str) -> re.Pattern[str]:
    """The reference: logparser's ``generate_logformat_regex`` (this project's compilation before the fix)."""
    pieces = re.split(r"(<[^<>]+>)", fmt)
    out = []
    for index, piece in enumerate(pieces):
        if index % 2:
            out.append(f"(?P<{piece.strip('<>').replace('.', '_')}>.*?)")
        else:
            out.append(re.sub(" +", r"\\s+", piece))
    return re.compile("^" + "".join(out) + "$")


def adversarial_lines(fmt: str, size: int, real: Sequence[str] = ()) -> dict[str, str]:
    """Lines of about ``size`` UTF-8 bytes in the shapes that make a backtracking layout slow."""
    punctuation = "".join(sorted({c for c in re.sub(r"<[^<>]+>", "", fmt) if not c.isalnum() and c != "\\"}))

    def fill(unit: str) -> str:
        return unit * max(1, size // len(unit.encode(errors="surrogatepass")))

    shapes = {
        "words": fill("a "), "no_spaces": fill("a"), "colons": fill(": "), "bare_colons": fill(":"),
        "brackets": fill("[a] "), "open_brackets": fill("["), "replaced_utf8": fill("\ufffd "),
        "lone_surrogate": fill("\ud800 "), "one_space_run": "a" + " " * max(0, size - 2) + "b",
        "punctuation": fill(punctuation + "a "), "punctuation_no_spaces": fill(punctuation.strip() + "a"),
        "hdfs_prefix": "081109 203615 148 INFO " + fill("a "),
        "bracket_prefix": "[Sun Dec 04] [error] " + fill("a ["),
    }
    if real:
        joined = " ".join(real)
        shapes["real_lines_joined"] = joined[: size]
        shapes["real_prefix_then_words"] = real[0][: len(real[0]) // 2] + " " + fill("a ")
    return shapes


class _Expired(Exception):
    pass


def _best(call: Callable[[], object], rounds: int, cap: float) -> float:
    """Best of ``rounds`` calls in seconds; raises _Expired when one call runs past ``cap`` seconds."""

    def expire(signum: int, frame: object) -> None:
        raise _Expired

    old = signal.signal(signal.SIGALRM, expire)
    best = float("inf")
    try:
        for _ in range(rounds):
            signal.setitimer(signal.ITIMER_REAL, cap)
            start = time.perf_counter()
            call()
            best = min(best, time.perf_counter() - start)
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return best


def _real_lines(system: str) -> list[str]:
    path = raw_log_path(system)
    return path.read_bytes().decode(errors="replace").splitlines() if path.is_file() else []


def _ours(fmt: str, size: int, real: list[str], rounds: int) -> dict[str, Any]:
    layout = LogFormat(fmt)
    times = {shape: _best(lambda line=line: layout.match(line), rounds, 60.0)  # type: ignore[misc]
             for shape, line in adversarial_lines(fmt, size, real).items()}  # match strips, as decoding does
    worst = max(times, key=times.__getitem__)
    out: dict[str, Any] = {"worst_s_per_line": times[worst], "worst_shape": worst}
    if real:
        out["typical_s_per_line"] = _best(lambda: [layout.match(line) for line in real], rounds, 60.0) / len(real)
        out["real_lines_matched"] = sum(layout.match(line) is not None for line in real)
    return out


def _reference_shape(pattern: re.Pattern[str], fmt: str, shape: str, size: int, rounds: int,
                     cap: float) -> dict[str, Any]:
    """Times at doubling sizes up to ``size``; the time at ``size`` measured or extrapolated."""
    points: list[tuple[int, float]] = []
    n = 8
    while True:
        n = min(n, size)
        line = adversarial_lines(fmt, n)[shape].strip()
        try:
            points.append((n, _best(lambda: pattern.match(line), rounds, cap)))  # noqa: B023 (called here)
        except _Expired:
            break
        if n == size:
            return {"s_at_size": points[-1][1], "measured": True}
        n = round(n * 1.5)
    fit = [(math.log(b), math.log(t)) for b, t in points[-4:] if t >= 1e-5]
    k = None
    if len(fit) >= 2:  # least squares slope of log t on log n: t ~ n^k
        mx, my = sum(x for x, _ in fit) / len(fit), sum(y for _, y in fit) / len(fit)
        k = sum((x - mx) * (y - my) for x, y in fit) / sum((x - mx) ** 2 for x, _ in fit)
    last_bytes, last_s = points[-1] if points else (0, 0.0)
    return {"s_at_size": None, "measured": False, "over_cap_at_bytes": n,
            "last_measured": {"bytes": last_bytes, "s": last_s},
            "growth_exponent": round(k, 2) if k is not None else None,
            "extrapolated_s_at_size": f"{last_s * (size / last_bytes) ** k:.3g}" if k and last_bytes else None}


def _reference(fmt: str, size: int, real: list[str], rounds: int, cap: float) -> dict[str, Any]:
    pattern = logparser_regex(fmt)
    shapes = {shape: _reference_shape(pattern, fmt, shape, size, rounds, cap)
              for shape in adversarial_lines(fmt, 128)}
    over = {shape: r for shape, r in shapes.items() if not r["measured"]}
    if over:  # a line of far fewer bytes already takes longer than the cap: that is a lower bound at size
        worst = min(over, key=lambda shape: over[shape]["over_cap_at_bytes"])
        worst_s, bound = cap, "at_least"
    else:
        worst = max(shapes, key=lambda shape: shapes[shape]["s_at_size"])
        worst_s, bound = shapes[worst]["s_at_size"], "measured"
    out: dict[str, Any] = {"worst_s_per_line": worst_s, "worst_is": bound, "worst_shape": worst,
                           "worst_detail": shapes[worst], "shapes_over_cap": sorted(over)}
    if real:
        out["typical_s_per_line"] = _best(lambda: [pattern.match(line.strip()) for line in real], rounds,
                                          60.0) / len(real)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decoder_worst_case",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--max-bytes", type=int, default=64 * 1024, help="line size (--max-line-bytes)")
    parser.add_argument("--cap", type=float, default=1.0, help="seconds one reference call may take")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated layout names")
    args = parser.parse_args(argv)
    results = []
    for name in [n for n in args.layouts.split(",") if n]:
        fmt = LAYOUTS[name]
        real = _real_lines(name) if name in LOG_FORMATS else []
        ours = _ours(fmt, args.max_bytes, real, args.rounds)
        reference = _reference(fmt, args.max_bytes, real, args.rounds, args.cap)
        results.append({"layout": name, "log_format": fmt, "line_bytes": args.max_bytes, "ours": ours,
                        "reference": reference,
                        "worst_ratio": round(reference["worst_s_per_line"] / max(ours["worst_s_per_line"], 1e-9)),
                        "worst_ratio_is": reference["worst_is"]})
    report = {"benchmark": "decoder_worst_case", "python": platform.python_version(),
              "reference": "logparser generate_logformat_regex (lazy .*? fields)", "results": results}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
