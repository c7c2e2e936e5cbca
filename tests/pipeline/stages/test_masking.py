"""Masking rules: each rule with examples it must mask and look-alikes it must leave alone."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.stages import masking
from pipeline.stages.masking import collapse, is_variable, mask, mask_token, mask_tokens, mask_tokens_raw, scrub, shape


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # numbers: ints, floats, signed, with thousands separators
        ("PacketResponder 1 for block", "PacketResponder <*> for block"),
        ("progress is : 0.10660437", "progress is : <*>"),
        ("txntype:-1 delta +3.25", "txntype:<*> delta <*>"),
        ("processed 1,024 items", "processed <*> items"),
        # durations and sizes, attached or with a separate unit word
        ("took 65894ms and 3.5s", "took <*> and <*>"),
        ("estimated size 16.0 KB, free 410.6 MB", "estimated size <*>, free <*>"),
        ("read 512 bytes in 250 ms", "read <*> in <*>"),
        # IPv4 with and without port, host:port with a name, IPv6
        ("from 173.234.31.186 port 22", "from <*> port <*>"),
        ("to /10.251.31.242:50010 ok", "to <*> ok"),
        ("server msra-sa-41:8030 and proxy.example.com:5070", "server <*> and <*>"),
        ("bind fe80::1ff:fe23:4567:890a and ::1", "bind <*> and <*>"),
        # URLs and e-mail addresses
        ("Input split: hdfs://host:9000/data/x.txt:0+1", "Input split: <*>"),
        ("listening on addresses :[akka.tcp://sys@10.1.2.3:59238]", "listening on addresses :[<*>]"),
        ("built by (bhcompile@bugs.build.redhat.com)", "built by (<*>)"),
        # paths: absolute, relative, Windows; trailing punctuation stays
        ("ok /etc/httpd/conf/workers2.properties", "ok <*>"),
        ("Error loading ./runtime_malloc: invalid", "Error loading <*>: invalid"),
        (r"to C:\Users\msrabi\AppData\Local\Temp", "to <*>"),
        ("forbidden by rule: /var/www/html/", "forbidden by rule: <*>"),
        # hex, long letter-only hex, UUIDs, MAC addresses (also without digits)
        ("core register: 0x00002000", "core register: <*>"),
        ("token deadbeefcafe", "token <*>"),
        ("[instance: 3edec1e4-9678-4a3a-a21b-a145a4ee5e61] Claim successful", "[instance: <*>] Claim successful"),
        ("link aa:bb:cc:dd:ee:ff up, chip FF:F2:9F:15:1F:72:00:0D", "link <*> up, chip <*>"),
        # dates and times
        ("connection at Sat Jul  9 11:35:59 2005", "connection at <*>"),
        ("since 2015-07-29 17:41:44,747 ok", "since <*> ok"),
        ('"GET /index.html HTTP/1.0" at 10/Oct/2000:13:55:36 -0700', '"GET <*>" at <*>'),
        # key=value and key:value: values with digits masked, keys kept, digit-free values kept
        ("logname= uid=0 euid=0 tty=NODEVssh user=root", "logname= uid=<*> euid=<*> tty=NODEVssh user=root"),
        ("r24=0x0 fpr29=0xffffffff", "r24=<*> fpr29=<*>"),
        ("sessionid:0x14f05578bd80001 type:create", "sessionid:<*> type:create"),
        # ids with digits
        ("Deleting block blk_-1608999687919862906 file", "Deleting block <*> file"),
        ("Launching attempt_1445144423722_0020_m_000001_0", "Launching <*>"),
        # dot leaders split from the value
        ("data store interrupt caused by icbi.........0", "data store interrupt caused by icbi.........<*>"),
        # lists of values collapse, annotations of a value collapse into it, empty values are values
        ("targets: [10.86.169.121:50010, 10.190.173.170:50010]", "targets: [<*>]"),
        ("datanode(s) 10.0.0.1:50010 10.0.0.2:50010 10.0.0.3:50010", "datanode(s) <*>"),
        ("close, 1165 bytes (1.13 KB) sent", "close, <*> sent"),
        ("connection from 211.57.88.250 () at", "connection from <*> at"),
        ("name '' given", "name '<*>' given"),
    ],
)
def test_masks_variables(message: str, expected: str) -> None:
    assert mask(message) == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Registered BlockManager", None),
        ("workerEnv.init() ok", None),
        ("java.io.IOException: mapred.job.id is deprecated", None),  # class and config names, not hosts
        ("using PIIX/ICH router", None),  # a slash inside a word is not a path
        ("Kernel command line: ro root=LABEL=/ rhgb quiet", None),  # "/" alone is not a path
        ("user=root rhost= tty=ssh", None),  # digit-free values are constants
        ("feedback facade cafe", None),  # words of hex letters, too short or not hex
        ("May I help? Market Decimal", None),  # month-like words without a day number
        ("FATAL ERROR: POSSIBLE BREAK-IN ATTEMPT!", None),
        ("a.out: No such file or directory", None),
        ("1 Block left", "<*> Block left"),  # a word that only starts like a unit stays
        ("in May 2005", "in May <*>"),  # a year is not a day of the month
    ],
)
def test_leaves_constants_alone(message: str, expected: str | None) -> None:
    assert mask(message) == (message if expected is None else expected)


@pytest.mark.parametrize(
    ("piece", "rule"),
    [
        ("/var/log/messages", "path"),
        ("~/x", "path"),
        ("fe80::1", "hexseq"),
        ("aa:bb:cc:dd:ee:ff", "hexseq"),
        ("ns.marryaldkfaczcz.com", "host"),
        ("lists.example.org.", "host"),
        ("deadbeefcafe", "hex"),
        ("ssh2", "digits"),
        ("12ms", "digits"),
        ("2015-07-29", "digits"),
        ("java.io.IOException", None),
        ("mapreduce.task.id", None),
        ("/", None),
        ("cafe", None),
        ("root", None),
    ],
)
def test_shape_rules(piece: str, rule: str | None) -> None:
    assert shape(piece) == rule


def test_collapse_keeps_labelled_and_word_tokens_apart() -> None:
    assert collapse(["<*>:", "<*>:", "Bye"]) == ["<*>:", "<*>:", "Bye"]
    assert collapse(["<*>", "(<*>)", "at"]) == ["<*>", "at"]
    assert collapse(["(<*>,", "<*>)"]) == ["(<*>)"]
    assert collapse(["uid=<*>", "<*>"]) == ["uid=<*>", "<*>"]
    assert is_variable("[<*>],") and not is_variable("uid=<*>") and not is_variable("()")


def test_masked_tokens_have_no_whitespace_and_no_digits_outside_keys() -> None:
    tokens = mask_tokens("user 42 from 10.0.0.1:22 took 3 ms r24=7 ok")
    assert tokens == ["user", "<*>", "from", "<*>", "took", "<*>", "r24=<*>", "ok"]


_ALPHABET = st.sampled_from(
    list("abcXYZ0189 .:/-_=,;()[]{}<>\"'@#*+~\\") + ["<*>", "http://", "Jan ", "KB", " ms", "0x", "()"]
)


@example("/(0,")  # a fragment left between masks is not a path
@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_masking_is_idempotent_and_never_adds_tokens(text: str) -> None:
    masked = mask(text)
    assert mask(masked) == masked
    assert len(mask_tokens(text)) <= len(text.split())


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join))
def test_raw_words_line_up_with_the_masked_tokens(text: str) -> None:
    tokens, raw = mask_tokens_raw(text)
    assert tokens == mask_tokens(text) and len(raw) == len(tokens)
    words = text.split()
    for token, word in zip(tokens, raw, strict=True):
        assert word is None or (word in words and mask_token(word) == token)


def test_raw_words_are_none_for_phrases_and_joined_runs() -> None:
    tokens, raw = mask_tokens_raw("uid=0 at Jul 9 11:35:59 sent [2, 3] ssh2 port 22 ssh2")
    assert tokens == ["uid=<*>", "at", "<*>", "sent", "[<*>]", "<*>", "port", "<*>"]
    assert raw == ["uid=0", "at", None, "sent", None, "ssh2", "port", None]


def test_lone_surrogates_are_replaced_before_masking() -> None:
    assert scrub("ok \ud800 and \udfff") == "ok \ufffd and \ufffd"
    assert scrub("caf\u00e9 \U0001f600") == "caf\u00e9 \U0001f600"  # valid text is untouched
    assert mask_tokens("bad \udc80 half") == ["bad", "\ufffd", "half"]


def _uncached_collapse_raw(tokens: list[str], raw: list[str | None]) -> tuple[list[str], list[str | None]]:
    """The token-by-token walk the memo in ``masking._collapse_raw`` stands in for."""
    joined: list[str] = []
    out_raw: list[str | None] = []
    for tok, word in zip(tokens, raw, strict=True):
        grown = collapse([*joined[-1:], tok])
        if joined and len(grown) == 1:
            joined[-1] = grown[0]
            out_raw[-1] = None
        else:
            joined.append(tok)
            out_raw.append(word)
    return joined, out_raw


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=30).map("".join), st.lists(_ALPHABET, max_size=30).map("".join))
def test_memoised_collapse_agrees_with_the_walk(first: str, second: str) -> None:
    # two messages that may share a masked shape: the second's raw words must come from the second
    for text in (first, second, first):
        words = text.split()
        tokens = [mask_token(w) for w in words]
        raw: list[str | None] = list(words)
        assert masking._collapse_raw(tokens, raw) == _uncached_collapse_raw(tokens, raw)
        assert masking._collapse_raw(tokens, raw)[0] == collapse(tokens)


def test_memoised_collapse_returns_fresh_lists() -> None:
    tokens, raw = ["[<*>,", "<*>]", "ok"], ["[1,", "2]", "ok"]
    out, _ = masking._collapse_raw(tokens, list(raw))
    out.append("changed")
    assert masking._collapse_raw(tokens, list(raw)) == (["[<*>]", "ok"], [None, "ok"])


_SHAPE_ALPHABET = st.sampled_from(
    list("abcXYZ0189 .:/-_=,;()[]{}<>\"'@") + ["<*>", "http://", "Jan ", "Jul  9 11:35:59", "16 KB", " ms", "0x",
                                              "0xdeadbeef", "1xdeadbeef", "deadbeef", "r24=", "blk_-", "()", "é",
                                              "\u0663", "\udc80", "\t"]
)


def _redigit(text: str, digits: list[int]) -> str:
    """``text`` with its n-th ASCII digit replaced by ``digits[n]`` (cycled): another line of the same shape."""
    out, n = [], 0
    for char in text:
        if "0" <= char <= "9" and digits:
            char, n = str(digits[n % len(digits)]), n + 1
        out.append(char)
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(st.lists(_SHAPE_ALPHABET, max_size=30).map("".join),
       st.lists(st.lists(st.integers(0, 9), max_size=6), min_size=1, max_size=4))
def test_shape_memo_agrees_with_the_uncached_path(text: str, variants: list[list[int]]) -> None:
    # lines that differ only in their digits share a memo entry; each must still get its own raw words
    masking.clear_memos()
    for line in [text, *(_redigit(text, digits) for digits in variants), text]:
        tokens, raw, joined = masking.mask_message(line)
        assert (tokens, raw, joined) == masking._mask_message(scrub(line))[:3]
        assert (list(tokens), raw) == mask_tokens_raw(line) and joined == " ".join(tokens)


def test_shape_memo_keeps_the_digits_a_key_holds() -> None:
    # ``r24=`` keeps its digits, so r24 and r25 share a shape but not tokens: that shape is never memoised
    assert masking.mask_message("set r24=7 ok")[0] == ("set", "r24=<*>", "ok")
    assert masking.mask_message("set r25=8 ok")[0] == ("set", "r25=<*>", "ok")
    assert masking.mask_message("blk_-1 from 10.0.0.1:5 ok")[1] == ["blk_-1", "from", "10.0.0.1:5", "ok"]
    assert masking.mask_message("blk_-2 from 10.0.0.2:6 ok")[1] == ["blk_-2", "from", "10.0.0.2:6", "ok"]


def test_shape_memo_is_bounded() -> None:
    masking.clear_memos()
    memo = masking._SHAPE_MEMO
    for i in range(memo.max_entries + 10):
        masking.mask_message("x" * (i % 50) + f" y{'a' * (i // 50)}")
    assert len(memo) <= memo.max_entries and memo.chars <= memo.max_chars
    masking.clear_memos()
    long_line = "word 1 " * 20_000
    masking.mask_message(long_line)
    assert len(memo) == 0  # too long to keep (and to pay a key for)
