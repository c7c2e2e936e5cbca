"""Presets: samples written from each format's specification decode, a hostile line is counted, auto picks right.

Sources: RFC 3164 section 5.4 (examples), RFC 5424 section 6.5 (examples), the Kubernetes CRI logging proposal
(kubelet-cri-logging.md: ``2016-10-06T00:17:09.669794202Z stdout P log content 1``), Docker's json-file driver
documentation, nginx's ``log_format combined`` (ngx_http_log_module) and Apache's combined LogFormat
(mod_log_config: ``127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 ...``),
logfmt (brandur.org/logfmt).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.config import PipelineSettings
from pipeline.embedded import pick_preset
from pipeline.errors import LogwardenError
from pipeline.records import RawLine
from pipeline.stages import presets
from pipeline.stages.assembly import CriAssembler, DockerAssembler, assembled
from pipeline.stages.chain import make_decoder
from pipeline.stages.entities import EntityExtractor

HOSTILE = "\ufffd\x00 not a log line at all " + "x" * 300

SAMPLES: dict[str, list[str]] = {
    "cri": ["2016-10-06T00:17:09.669794202Z stdout F log content 1",
            "2016-10-06T00:17:10.113242941Z stderr F log content 2"],
    "docker": ['{"log":"Log line is here\\n","stream":"stdout","time":"2019-01-01T11:11:11.111111111Z"}',
               '{"log":"another one\\n","stream":"stderr","time":"2019-01-01T11:11:12.0Z"}'],
    "kubectl": ["2026-11-30T10:00:00.123456789Z starting server on :8080",
                "2026-11-30T10:00:01.5Z GET /healthz 200"],
    "rfc3164": ["<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
                "Oct  1 02:03:04 web1 sshd[1234]: Accepted publickey for deploy from 10.0.0.1 port 5555"],
    "rfc5424": ["<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed for "
                "lonvick on /dev/pts/8",
                '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
                'eventSource="Application" eventID="1011"] An application event log entry...'],
    "nginx": ['203.0.113.7 - - [10/Oct/2000:13:55:36 -0700] "GET /api/users/42?full=1 HTTP/1.1" 200 2326 '
              '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
              '203.0.113.8 - - [10/Oct/2000:13:55:37 -0700] "POST /api/orders HTTP/1.1" 503 0 "-" "curl/8.5"'],
    "apache": ['127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
               '127.0.0.1 - - [10/Oct/2000:13:55:40 -0700] "GET /index.html HTTP/1.0" 304 -'],
    "logfmt": ['time=2026-11-30T10:00:00Z level=info msg="request done" path=/api status=200',
               'ts=2026-11-30T10:00:01Z level=error msg="payment \\"failed\\"" order=42'],
    "loghub-hdfs": ["081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_-1608999687919862906 src: "
                    "/10.250.19.102:54106 dest: /10.250.19.102:50010"],
}
MESSAGES = {
    "cri": "log content 1", "docker": "Log line is here\n", "kubectl": "starting server on :8080",
    "rfc3164": "'su root' failed for lonvick on /dev/pts/8",
    "rfc5424": "'su root' failed for lonvick on /dev/pts/8", "nginx": "GET /api/users/42?full=1 HTTP/1.1 200",
    "apache": "GET /apache_pb.gif HTTP/1.0 200", "logfmt": "request done",
    "loghub-hdfs": "Receiving block blk_-1608999687919862906 src: /10.250.19.102:54106 dest: /10.250.19.102:50010",
}


def settings_for(name: str, **given: object) -> PipelineSettings:
    return PipelineSettings().merged(presets.apply(name, given)).merged(given)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_decodes_and_hostile_line_is_counted(name: str) -> None:
    decoder = make_decoder(settings_for(name), "auto")
    records = [decoder.decode(RawLine(line.encode(), "t", i)) for i, line in enumerate([*SAMPLES[name], HOSTILE])]
    *good, bad = records
    assert good[0].message == MESSAGES[name]
    assert all(r.timestamp is not None and not r.flags for r in good), [(r.timestamp, r.flags) for r in good]
    # Kept (the whole line travels as the record's raw text), without a time, flagged and counted.
    assert bad.raw.strip() == HOSTILE.strip() and bad.timestamp is None
    stats = decoder.stats
    if name == "docker":  # a JSON stream: the line that is not JSON is counted as such
        assert stats.not_json == 1
    else:
        assert {"unmatched", "bad_timestamp"} & set(bad.flags)
        assert stats.unmatched + stats.bad_timestamp == 1
    assert stats.lines == len(records)


def test_default_entities() -> None:
    def entity(name: str, line: str) -> list[tuple[str, str]]:
        s = settings_for(name)
        record = make_decoder(s).decode_text(line)
        return EntityExtractor(s.entity_regex, s.entity_field).entities(record)

    assert entity("nginx", SAMPLES["nginx"][0]) == [("client.ip", "203.0.113.7")]
    assert entity("rfc3164", SAMPLES["rfc3164"][0]) == [("host.name", "mymachine")]
    assert entity("rfc5424", SAMPLES["rfc5424"][1]) == [("host.name", "mymachine.example.com")]
    assert entity("loghub-hdfs", SAMPLES["loghub-hdfs"][0]) == [("message", "blk_-1608999687919862906")]
    assert entity("cri", SAMPLES["cri"][0]) == [("all", "*")]  # one container's stream, per minute
    assert settings_for("cri").window == "tumbling"


def test_explicit_options_override_the_preset() -> None:
    s = settings_for("nginx", entity_regex=r"/api/\w+", window="tumbling", time_format="%d/%b/%Y:%H:%M:%S %z")
    assert s.entity_field is None and s.entity_regex == r"/api/\w+" and s.window == "tumbling"
    s = settings_for("rfc3164", log_format="<Month> <Day> <Time> <Content>")
    assert s.log_format == "<Month> <Day> <Time> <Content>" and s.entity_field == "host.name"
    assert make_decoder(s).decode_text("Oct 11 22:14:15 hello").message == "hello"


def test_rfc5424_fields() -> None:
    record = make_decoder(settings_for("rfc5424")).decode_text(SAMPLES["rfc5424"][1])
    assert record.fields["log.syslog.structured_data"].startswith("[exampleSDID@32473 iut=\"3\"")
    assert record.fields["log.syslog.severity.code"] == "5" and record.fields["event.code"] == "ID47"
    assert "process.pid" not in record.fields  # NILVALUE "-"


def test_unknown_preset_names_the_closest() -> None:
    with pytest.raises(LogwardenError, match="unknown preset 'ngnix'.*did you mean 'nginx'"):
        presets.apply("ngnix", {})


@pytest.mark.parametrize("name", ["cri", "docker", "kubectl", "rfc3164", "rfc5424", "nginx", "logfmt",
                                  "loghub-hdfs"])
def test_auto_picks_the_preset(name: str) -> None:
    head = SAMPLES[name] * 20 + [HOSTILE]
    picked = pick_preset(replace(PipelineSettings(), log_format="auto"), head)
    assert picked.preset == name
    assert picked.log_format == presets.get(name).log_format


def test_auto_refuses_prose() -> None:
    with pytest.raises(LogwardenError, match="no preset reads the first lines"):
        pick_preset(replace(PipelineSettings(), log_format="auto"), ["hello there", "no timestamps here"] * 10)


def raw(text: str, offset: int, origin: str = "f") -> RawLine:
    return RawLine(text.encode(), origin, offset)


def test_cri_partial_lines_are_reassembled_per_stream() -> None:
    lines = [raw("2016-10-06T00:17:09.669794202Z stdout P log content 1", 1),
             raw("2016-10-06T00:17:09.669794203Z stderr F an error", 2),
             raw("2016-10-06T00:17:09.669794204Z stdout P  and more", 3),
             raw("2016-10-06T00:17:10.113242941Z stdout F  and the end", 4),
             raw("garbage that is not CRI", 5)]
    assembler = CriAssembler()
    out = list(assembled(lines, assembler))
    assert [(r.offset, r.data) for r in out] == [
        (2, b"2016-10-06T00:17:09.669794203Z stderr F an error"),
        (4 - 3, b"2016-10-06T00:17:09.669794202Z stdout F log content 1 and more and the end"),
        (5, b"garbage that is not CRI")]
    assert assembler.stats.joined == 1 and assembler.stats.pieces == 3


def test_cri_partial_without_end_is_kept_and_bounded() -> None:
    lines = [raw("2016-10-06T00:17:09Z stdout P " + "x" * 400, i) for i in range(1, 20)]
    out = list(assembled(lines, CriAssembler(max_bytes=1000)))
    assert len(out) == 1 and out[0].truncated and len(out[0].data) == 1000 and out[0].offset == 1


def test_docker_split_lines_are_reassembled() -> None:
    lines = [raw('{"log":"part one, ","stream":"stdout","time":"2019-01-01T11:11:11.1Z"}', 1),
             raw('{"log":"part two\\n","stream":"stdout","time":"2019-01-01T11:11:11.2Z"}', 2),
             raw('{"log":"whole\\n","stream":"stderr","time":"2019-01-01T11:11:12Z"}', 3)]
    out = list(assembled(lines, DockerAssembler()))
    decoder = make_decoder(settings_for("docker"))
    records = [decoder.decode(r) for r in out]
    assert [r.message for r in records] == ["part one, part two\n", "part one, part two\n"][:1] + ["whole\n"]
    assert records[0].timestamp == pytest.approx(1546341071.1)
