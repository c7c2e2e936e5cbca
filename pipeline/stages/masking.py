"""Generic masking: turn a log message into tokens whose variable parts are replaced by ``<*>``.

This is the pre-tokeniser in front of Drain (:mod:`pipeline.stages.templates`). It is one default for every
system, so its rules follow from how log messages are written, not from any one product:

* **Whole phrases first.** Spans that contain spaces or delimiters of their own are masked before the
  message is split: URLs (``scheme://...``), e-mail addresses, dates written with month names
  (``Sun Dec 04 04:47:44 2005``, ``Jul  9 11:35:59``, ``10/Oct/2000:13:55:36 +0200``), a number
  followed by a unit word (``16.0 KB``, ``250 ms``: the unit changes with the magnitude) and empty
  values printed between brackets or quotes (``()`` becomes ``(<*>)``).
* **Whole tokens by shape**: file paths (``/var/www/``, ``./a.out``, ``C:\\Temp``), host names ending
  in a common top-level domain, and hex groups joined by ``:`` or ``-`` (IPv6, MAC addresses, WWNs).
* **Tokens are split into pieces** on punctuation that separates values from the text around them:
  brackets, parentheses, braces, quotes, ``,`` ``;`` ``|``, ``=`` (``key=value``), ``:`` after a word
  (``key:value``, ``name:``) and runs of two or more dots (dot leaders such as ``enabled.....0``).
* **A piece that contains a digit is a variable**: numbers of any sign and precision, durations and
  sizes (``12ms``, ``3.5s``, ``64KB``), IPv4 addresses with or without port, ``host:port``, hex
  (``0x1f``), UUIDs, times and dates, ids (``blk_-42``, ``attempt_1_2_m_3``). Developers put digits
  into messages through format arguments far more often than into the fixed text; Drain assumes the
  same with ``parametrize_numeric_tokens``. Long hex strings written with letters only are variables
  too. The key of ``key=value`` is kept even with digits in it (``r24=<*>``): keys are names.
* Masks joined only by separators become one (``1,024``, ``host.example.com:80``, ``3/4``), so a
  value has the same shape whatever its magnitude or form.
* **Digit-free words stay constants**, including ``key=value`` values such as ``user=root``: such
  values are usually enums chosen by the code. The template miner still generalises a word position
  that shows many different values.
* **Runs of adjacent variable tokens collapse into one** (``[<*>, <*>]`` -> ``[<*>]``, a date and a time
  -> ``<*>``, a value and its bracketed annotation ``1165 bytes (1.13 KB)`` -> ``<*>``): lists vary in
  length and annotations come and go from one line to the next, and the token count is the first
  thing Drain groups by.

Masks are Drain's own parameter string ``<*>``, so a masked position never counts as a constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from pipeline.stages.memo import MISSING, Memo

MASK = "<*>"
# Bump when a rule changes: templates (and so template ids) learnt with other rules no longer apply.
MASKING_VERSION = 1

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DAY = r"(?:Mon(?:day)?|Tue(?:s(?:day)?)?|Wed(?:nesday)?|Thu(?:rs(?:day)?)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?),?"
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
_NUMBER = r"[+\-]?\d+(?:[.,]\d+)?"
_UNITS = (
    r"[KMGTPE]i?B|[kKMGTPE]?b(?:ps|/s)|B|bytes?|[mun]?s|µs|secs?|seconds?|mins?|minutes?|hours?"
    r"|[kMG]?Hz"
)

# Phrases masked on the whole message before it is split: (name, regex). Order matters.
PHRASE_RULES: tuple[tuple[str, str], ...] = (
    ("url", r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s\"'<>\[\](){},;]*"),
    ("email", r"\b[\w.+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
    (
        "date",
        rf"\b(?:{_DAY}\s+)?{_MONTH}\s+\d{{1,2}}(?:,?\s+\d{{4}})?(?:\s+{_CLOCK})?(?:\s+[A-Z]{{3,4}})?"
        rf"(?:\s+\d{{4}})?\b(?!:)"
        rf"|\b\d{{1,2}}[/\- ]{_MONTH}[/\- ]\d{{2,4}}(?::{_CLOCK})?(?:\s+[+\-]\d{{4}})?",
    ),
    ("quantity", rf"(?<![\w.]){_NUMBER}\s*(?:{_UNITS})\b(?![.\-]\w)"),
    ("empty", r"(?<!\S)(?:\(\)|\[\]|\{\}|''|\"\")(?=[\s,;:.]|$)"),
)

# Shapes that make a whole token (or one piece of it) a variable: (name, regex matched in full).
SHAPE_RULES: tuple[tuple[str, str], ...] = (
    ("path", r"(?:[A-Za-z]:\\|\\\\|~?/|\.{1,2}/)\S*[^\s:,;.]"),
    (
        "hexseq",
        r"(?=.*\d)(?=(?:[^:]*:){2})[0-9A-Fa-f:]+"
        r"|[0-9A-Fa-f]{2}([:\-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}",
    ),
    (
        "host",
        r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+"
        r"(?:com|net|org|edu|gov|mil|int|info|biz|local|localdomain|lan|internal|arpa|corp|home"
        r"|cn|de|uk|jp|ru|br|fr|nl|au|kr|tw|hk|ca|es|pl|se|ch|eu)\.?",
    ),
    ("hex", r"(?:0[xX])?(?:[a-f]{8,}|[A-F]{8,})"),
    ("digits", r".*\d.*"),
)

_PHRASES = [(name, re.compile(rx)) for name, rx in PHRASE_RULES]
# Cheap tests that rule a phrase out before its regex runs (masking speed matters to the workers). Each is
# implied by its regex: a date names a month (its three-letter stem), a quantity is a digit, optional blanks
# and the first letter of a unit.
# Each test is one call into C (a substring test or one compiled search), not a Python loop over stems.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_STEM = re.compile("|".join(_MONTHS))
_UNIT_START = re.compile(r"\d\s*[KMGTPEkbBmunsµhH]")
_EMPTY_PAIR = re.compile(r"\(\)|\[\]|\{\}|''|\"\"")
_PREFILTER: dict[str, Callable[[str], object]] = {
    "url": lambda m: "://" in m,
    "email": lambda m: "@" in m,
    "date": _MONTH_STEM.search,
    "quantity": _UNIT_START.search,
    "empty": _EMPTY_PAIR.search,
}
_SHAPES = [(name, re.compile(rx)) for name, rx in SHAPE_RULES]
_TOKEN_SHAPES = {"path", "hexseq", "host"}
_DELIMS = re.compile(r"([\[\](){}<>\"'`,;|=]|\.{2,}|(?<=[A-Za-z_]):(?!//)|:(?=[A-Z][a-z])|:$)")
_KEY = re.compile(r"[A-Za-z_][\w.\-]*")
_ANNOTATION = re.compile(r"(?:\(<\*>\)|\[<\*>\]|\{<\*>\})([,;:.]?)")
# Masks joined only by separators are one value: 1,024 | host:port (name or IP) | 3/4 | a-1.
_REPEATED_MASK = re.compile(r"<\*>(?:[:,./_@\-]?<\*>)+")
_VARIABLE_TOKEN = re.compile(r"[^A-Za-z0-9]*<\*>[^A-Za-z0-9]*(?:<\*>[^A-Za-z0-9]*)*")


def shape(piece: str) -> str | None:
    """The name of the first shape rule that makes ``piece`` a variable, or None for a constant."""
    for name, rx in _SHAPES:
        if rx.fullmatch(piece):
            return name
    return None


def mask_token(token: str) -> str:
    """:func:`_mask_token`, memoised for tokens short enough to repeat (a long one would only fill the memo)."""
    return _mask_short_token(token) if len(token) <= _TOKEN_MEMO_CHARS else _mask_token(token)


def _mask_token(token: str) -> str:
    """Mask the variable pieces of one whitespace-free token; delimiters are kept as they are.

    A token that already holds masks (a masked text masked again, or a line that prints ``<*>``) is masked
    piece by piece between them, and the whole-token shapes (path, host, hex sequence) are not applied to a
    piece: a fragment such as ``/(`` in ``/(<*>,`` is what is left of a token, not a path. That keeps
    masking idempotent.
    """
    if MASK in token:
        masked = MASK.join(_mask_pieces(p) if p else p for p in token.split(MASK))
    elif shape(token) in _TOKEN_SHAPES:
        return MASK
    else:
        masked = _mask_pieces(token)
    return _REPEATED_MASK.sub(MASK, masked)


# Tokens longer than this are masked without the memo: 65,536 entries of at most 128 characters stay under
# 10 MB, where a stream of 64 KiB junk tokens would otherwise keep gigabytes.
_TOKEN_MEMO_CHARS = 128
_mask_short_token = lru_cache(maxsize=1 << 16)(_mask_token)


def clear_memos() -> None:
    """Forget every memoised token, collapse plan and shape (a benchmark that times masking cold calls this)."""
    _mask_short_token.cache_clear()
    _COLLAPSED.clear()
    _SHAPE_MEMO.clear()


def _mask_pieces(token: str) -> str:
    """Split ``token`` at delimiters and mask every piece a shape rule calls a variable."""
    parts = _DELIMS.split(token)
    out: list[str] = []
    for i, part in enumerate(parts):
        if i % 2 or not part:
            out.append(part)
        elif i + 1 < len(parts) and parts[i + 1] == "=" and _KEY.fullmatch(part):
            out.append(part)  # the key of key=value is a name
        else:
            out.append(MASK if shape(part) else part)
    return "".join(out)


def is_variable(token: str) -> bool:
    """True for a token made only of masks and punctuation (``<*>``, ``[<*>],``, ``<*>:<*>``)."""
    return MASK in token and _VARIABLE_TOKEN.fullmatch(token) is not None


def collapse(tokens: Iterable[str]) -> list[str]:
    """Join runs of adjacent variable tokens into one token.

    A token joins the variable token before it when that one ends with a mask (optionally followed
    by ``,``, as in a list) and the token starts with a mask, or is a whole bracketed variable: an
    annotation such as ``1024 (1 KB)`` or ``10.0.0.1 (host.example.com)`` that some lines carry and
    others do not. The result keeps the punctuation before the first mask and after the last:
    ``[<*>, <*>]`` -> ``[<*>]``, ``<*> <*>`` -> ``<*>``, ``<*> (<*>),`` -> ``<*>,``. Labelled values
    (``<*>: <*>``) stay separate tokens.
    """
    out: list[str] = []
    for tok in tokens:
        prev = out[-1] if out else ""
        if not (MASK in tok and prev.rstrip(",").endswith(MASK) and is_variable(prev)):
            out.append(tok)
        elif tok.startswith(MASK) and is_variable(tok):
            out[-1] = prev[: prev.index(MASK)] + MASK + tok[tok.rindex(MASK) + len(MASK) :]
        elif (annotation := _ANNOTATION.fullmatch(tok)) is not None:
            out[-1] = prev.rstrip(",") + annotation.group(1)
        else:
            out.append(tok)
    return out


# Masked token list -> (collapsed tokens, for each the index of the one token it was made of, or -1 when joined).
# Collapsing looks only at the masked tokens, and masked messages repeat (a log has far fewer shapes than
# lines), so this memo spares most lines the token-by-token walk. Bounded: cleared when full.
_COLLAPSED: Memo[tuple[str, ...], tuple[tuple[str, ...], tuple[int, ...] | None]] = Memo(50_000, 2_000_000)


def _collapse_plan_of(tokens: list[str]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """:func:`collapse` of ``tokens`` and where each collapsed token came from, through the ``_COLLAPSED`` memo."""
    key = tuple(tokens)
    plan = _COLLAPSED.get(key)
    if plan is MISSING:
        plan = _collapse_plan(tokens)
        _COLLAPSED.put(key, plan, sum(map(len, key)) + len(key))
    return plan


def _collapse_raw(tokens: list[str], raw: list[str | None]) -> tuple[list[str], list[str | None]]:
    """:func:`collapse`, carrying along the raw word of each token (None for tokens that were joined)."""
    out, sources = _collapse_plan_of(tokens)
    if sources is None:  # nothing joined (the common case): the raw words line up
        return list(out), raw
    return list(out), [None if i < 0 else raw[i] for i in sources]


def _collapse_plan(tokens: list[str]) -> tuple[tuple[str, ...], tuple[int, ...] | None]:
    """The collapsed tokens and where each came from (see ``_COLLAPSED``); None: nothing was joined."""
    out = collapse(tokens)
    if len(out) == len(tokens):
        return tuple(out), None
    joined: list[str] = []
    sources: list[int] = []
    for i, tok in enumerate(tokens):
        grown = collapse([*joined[-1:], tok])
        if joined and len(grown) == 1:
            joined[-1] = grown[0]
            sources[-1] = -1
        else:
            joined.append(tok)
            sources.append(i)
    return tuple(joined), tuple(sources)


def _empty_value(m: re.Match[str]) -> str:
    return m.group(0)[0] + MASK + m.group(0)[-1]


# (prefilter, regex, replacement) of each phrase rule, in order: the loop above does no lookups.
_Replacement = Callable[[re.Match[str]], str] | str
_PHRASE_STEPS: tuple[tuple[Callable[[str], object], re.Pattern[str], _Replacement], ...] = tuple(
    (_PREFILTER.get(name, lambda m: True), rx, _empty_value if name == "empty" else MASK) for name, rx in _PHRASES)


def scrub(message: str) -> str:
    """``message`` with every lone surrogate replaced by U+FFFD.

    A ``str`` can hold UTF-16 halves (from ``surrogateescape`` decoding or a JSON ``"\\ud800"``) that no
    encoder accepts; template ids hash UTF-8, so such a word would break the miner for good (the cluster
    is stored before its id is computed). Pure ASCII, the common case, costs one check.
    """
    if message.isascii():
        return message
    try:
        message.encode("utf-8")
    except UnicodeEncodeError:
        return message.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return message


def _mask_phrases(message: str) -> tuple[str, bool]:
    """The message with every phrase masked, and whether any was."""
    hit = False
    for test, rx, replacement in _PHRASE_STEPS:
        if test(message):
            message, n = rx.subn(replacement, message)
            hit = hit or n > 0
    return message, hit


def mask_tokens(message: str) -> list[str]:
    """The masked token list of a message: phrases masked, tokens masked, variable runs collapsed."""
    return collapse(_mask_short_token(w) if len(w) <= _TOKEN_MEMO_CHARS else _mask_token(w)
                    for w in _mask_phrases(scrub(message))[0].split())


def mask_tokens_raw(message: str) -> tuple[list[str], list[str | None]]:
    """:func:`mask_tokens` and, for each masked token, the one raw word it was made of.

    The raw word is None where it is not one word of the message: a token that holds a masked phrase
    (a date, URL, quantity: spans with spaces of their own) or a run of tokens joined by
    :func:`collapse`. The template miner uses the raw words to keep a masked token that never varies.
    """
    tokens, raw, _ = mask_message(message)
    return list(tokens), raw


def mask_message(message: str) -> tuple[tuple[str, ...], list[str | None], str]:
    """:func:`mask_tokens_raw` as the miner wants it: the masked tokens, their raw words and the tokens joined
    by single spaces (one string shared by every line of a shape, so its hash is computed once).

    Memoised per *shape*: the message with every ASCII digit read as ``0`` (see ``_SHAPE_MEMO``). Most messages
    of a log are unique only by their numbers (``blk_-42``, ``10.0.0.1:50010``), and no rule looks at which
    digit stands where, only at where digits stand, so the lines of one shape mask alike; only their raw words
    differ, and those are cut from the line itself.
    """
    ascii_ = message.isascii()
    if not ascii_:  # ``scrub``'s own first test, made once here
        message = scrub(message)
    if len(message) > _SHAPE_MEMO.max_key_chars:  # never kept: the key would only cost a pass over the line
        return _mask_message(message)[:3]
    key: str | bytes = message.encode().translate(_ZERO_BYTES) if ascii_ else message.translate(_ZERO_CHARS)
    found = _SHAPE_MEMO.find(key, MISSING)
    if found is MISSING:
        tokens, raw, joined, sources, phrased = _mask_message(message)
        # A digit left in the tokens (the key of ``r24=7``) differs between lines of one shape: not memoised.
        _SHAPE_MEMO.put(key, None if _ASCII_DIGIT.search(joined) else (tokens, joined, sources, phrased), len(key))
        return tokens, raw, joined
    if found is None:
        return _mask_message(message)[:3]
    tokens, joined, sources, phrased = found
    words: list[str | None] = (
        [None if MASK in w else w for w in _mask_phrases(message)[0].split()] if phrased
        else message.split())  # type: ignore[assignment]  # no phrase masked: the words are the message's
    return tokens, words if sources is None else [None if i < 0 else words[i] for i in sources], joined


# The shape memo (see mask_message): shape -> (tokens, tokens joined, where each token's raw word is, whether a
# phrase rule masked a span; None for a shape whose tokens keep a digit). Bounded by entries and characters,
# like every memo here; its values hold about as many characters as its keys.
_SHAPE_MEMO: Memo[str | bytes, tuple[tuple[str, ...], str, tuple[int, ...] | None, bool] | None] = Memo(
    20_000, 2_000_000)
_ZERO_BYTES = bytes.maketrans(b"123456789", b"000000000")
_ZERO_CHARS = str.maketrans("123456789", "000000000")
_ASCII_DIGIT = re.compile("[0-9]")


def _mask_message(message: str) -> tuple[tuple[str, ...], list[str | None], str, tuple[int, ...] | None, bool]:
    """:func:`mask_message` without the shape memo (``message`` already scrubbed), and for the memo: the collapse
    plan's sources (see ``_COLLAPSED``) and whether the raw words are those of the phrase-masked message."""
    masked, hit = _mask_phrases(message)
    words = masked.split()
    phrased = hit or MASK in message
    raw: list[str | None] = [None if MASK in w else w for w in words] if phrased else list(words)
    short = _mask_short_token  # mask_token, inlined: this is the hot path
    tokens = [short(w) if len(w) <= _TOKEN_MEMO_CHARS else _mask_token(w) for w in words]
    out, sources = _collapse_plan_of(tokens)
    if sources is not None:  # runs were joined: the raw words of the tokens that were kept whole
        raw = [None if i < 0 else raw[i] for i in sources]
    return out, raw, " ".join(out), sources, phrased


def mask(message: str) -> str:
    """The masked message as one string of tokens separated by single spaces."""
    return " ".join(mask_tokens(message))
