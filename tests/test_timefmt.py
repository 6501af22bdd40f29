from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relayminer.sessions.timefmt import format_rfc3339nano, parse_rfc3339nano


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-08-20T12:00:00Z", datetime(2026, 8, 20, 12, tzinfo=UTC)),
        ("2026-08-20T12:00:00.5Z", datetime(2026, 8, 20, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-08-20T12:00:00.123456789Z", datetime(2026, 8, 20, 12, 0, 0, 123456, tzinfo=UTC)),
        (
            "2026-08-20T12:00:00.1+02:00",
            datetime(2026, 8, 20, 12, 0, 0, 100000, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            "2026-08-20T12:00:00-05:30",
            datetime(2026, 8, 20, 12, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_parse_go_rfc3339nano(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339nano(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-08-20",
        "2026-08-20 12:00:00Z",
        "2026-08-20T12:00:00",
        "2026-08-20T12:00:00.1234567890Z",
        "",
        "yesterday",
    ],
)
def test_parse_rejects_non_rfc3339(text: str) -> None:
    with pytest.raises(ValueError, match="RFC3339"):
        parse_rfc3339nano(text)


def test_format_trims_fraction_like_go() -> None:
    assert format_rfc3339nano(datetime(2026, 8, 20, 12, tzinfo=UTC)) == "2026-08-20T12:00:00Z"
    assert (
        format_rfc3339nano(datetime(2026, 8, 20, 12, 0, 0, 120000, tzinfo=UTC))
        == "2026-08-20T12:00:00.12Z"
    )
    plus2 = datetime(2026, 8, 20, 14, tzinfo=timezone(timedelta(hours=2)))
    assert format_rfc3339nano(plus2) == "2026-08-20T12:00:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_rfc3339nano(datetime(2026, 1, 1))


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_round_trip(value: datetime) -> None:
    assert parse_rfc3339nano(format_rfc3339nano(value)) == value
