"""kafka-python checks every fetched batch's CRC-32C; without its C extension that check runs in pure Python
and costs more CPU than everything else a plain consumer does (issue 14), so the extension is a dependency."""

from kafka.record import util


def test_kafka_python_checks_crcs_with_the_c_extension() -> None:
    assert util.crc32c_c is not None, "pip install 'kafka-python[crc32c]' (pyproject's dependency)"
    assert util._crc32c is util.crc32c_c
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value
