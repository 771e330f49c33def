"""Table and property tests for business hours (routing.calendar)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.calendar import BusinessCalendar

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WORKWEEK = ("mon", "tue", "wed", "thu", "fri")
ALL_WEEK = (*WORKWEEK, "sat", "sun")

CAL = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=WORKWEEK, open="08:00", close="18:00",
                             holidays=[date(2026, 12, 24), date(2026, 12, 25)])
EVERY_DAY = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=ALL_WEEK, open="08:00", close="18:00")
NY = BusinessCalendar.build(timezone="America/New_York", weekdays=WORKWEEK, open="08:00", close="18:00")
UTC_CAL = BusinessCalendar.build(timezone="UTC", weekdays=WORKWEEK, open="09:00", close="17:00")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[arg-type,misc]


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        (CAL, berlin(2026, 3, 27, 7, 59), False),   # Friday before opening
        (CAL, berlin(2026, 3, 27, 8, 0), True),     # opening is open
        (CAL, berlin(2026, 3, 27, 17, 59), True),
        (CAL, berlin(2026, 3, 27, 18, 0), False),   # closing is closed
        (CAL, berlin(2026, 3, 28, 12, 0), False),   # Saturday
        (CAL, berlin(2026, 12, 24, 12, 0), False),  # holiday
        (CAL, datetime(2026, 3, 30, 6, 0, tzinfo=UTC), True),   # 08:00 CEST, the Monday after spring-forward
        (CAL, datetime(2026, 3, 27, 6, 30, tzinfo=UTC), False),  # 07:30 CET the Friday before
        (EVERY_DAY, datetime(2026, 3, 29, 6, 0, tzinfo=UTC), True),    # 08:00 CEST on the DST day
        (EVERY_DAY, datetime(2026, 3, 29, 16, 0, tzinfo=UTC), False),  # 18:00 CEST
        (EVERY_DAY, datetime(2026, 10, 25, 6, 30, tzinfo=UTC), False),  # 07:30 CET after fall-back
        (EVERY_DAY, datetime(2026, 10, 25, 16, 59, tzinfo=UTC), True),  # 17:59 CET
        (NY, ny(2026, 3, 9, 8, 0), True),
        (NY, datetime(2026, 3, 9, 12, 0, tzinfo=UTC), True),    # 08:00 EDT
        (NY, datetime(2026, 3, 6, 12, 0, tzinfo=UTC), False),   # 07:00 EST
    ],
)
def test_is_open(cal: BusinessCalendar, at: datetime, expected: bool) -> None:
    assert cal.is_open(at) is expected


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        (CAL, berlin(2026, 3, 27, 12, 0), berlin(2026, 3, 27, 12, 0)),   # open: itself
        (CAL, berlin(2026, 3, 27, 18, 0), berlin(2026, 3, 30, 8, 0)),    # Friday close -> Monday
        (CAL, berlin(2026, 3, 28, 3, 0), berlin(2026, 3, 30, 8, 0)),     # weekend (across spring-forward)
        (CAL, berlin(2026, 3, 30, 6, 0), berlin(2026, 3, 30, 8, 0)),     # early morning
        (CAL, berlin(2026, 12, 23, 19, 0), berlin(2026, 12, 28, 8, 0)),  # holidays then weekend
        (EVERY_DAY, berlin(2026, 3, 29, 1, 0), berlin(2026, 3, 29, 8, 0)),
        (EVERY_DAY, berlin(2026, 10, 24, 20, 0), berlin(2026, 10, 25, 8, 0)),
    ],
)
def test_next_open(cal: BusinessCalendar, at: datetime, expected: datetime) -> None:
    got = cal.next_open(at)
    assert got == expected
    assert got.tzinfo is UTC
    assert cal.is_open(got)


@pytest.mark.parametrize(
    ("cal", "start", "hours", "expected"),
    [
        # 4 business hours from Friday 16:00: 2 on Friday, 2 on Monday.
        (CAL, berlin(2026, 3, 27, 16, 0), 4, berlin(2026, 3, 30, 10, 0)),
        # Landing exactly at closing time stays on that day.
        (CAL, berlin(2026, 3, 27, 16, 0), 2, berlin(2026, 3, 27, 18, 0)),
        (CAL, berlin(2026, 3, 26, 8, 0), 10, berlin(2026, 3, 26, 18, 0)),
        # One minute more is the next business day.
        (CAL, berlin(2026, 3, 27, 16, 0), 2 + 1 / 60, berlin(2026, 3, 30, 8, 1)),
        # Start outside hours: counting starts at the next opening.
        (CAL, berlin(2026, 3, 30, 6, 0), 1, berlin(2026, 3, 30, 9, 0)),
        (CAL, berlin(2026, 3, 27, 19, 0), 0.5, berlin(2026, 3, 30, 8, 30)),
        (CAL, berlin(2026, 3, 28, 12, 0), 1, berlin(2026, 3, 30, 9, 0)),       # Saturday
        # Holidays (Thu 24 + Fri 25 Dec) and the weekend.
        (CAL, berlin(2026, 12, 23, 17, 0), 2, berlin(2026, 12, 28, 9, 0)),
        # Several days: 25 h = 2.5 business days.
        (CAL, berlin(2026, 3, 23, 8, 0), 25, berlin(2026, 3, 25, 13, 0)),
        # DST in Berlin: the weekend of spring-forward (Sunday 29 Mar) and fall-back (Sunday 25 Oct).
        (CAL, berlin(2026, 10, 23, 16, 0), 4, berlin(2026, 10, 26, 10, 0)),
        (EVERY_DAY, berlin(2026, 3, 28, 17, 0), 2, berlin(2026, 3, 29, 9, 0)),
        (EVERY_DAY, berlin(2026, 3, 29, 17, 0), 2, berlin(2026, 3, 30, 9, 0)),
        (EVERY_DAY, berlin(2026, 10, 24, 17, 0), 2, berlin(2026, 10, 25, 9, 0)),
        (EVERY_DAY, berlin(2026, 10, 25, 8, 0), 10, berlin(2026, 10, 25, 18, 0)),
        # DST in New York (Sunday 8 Mar, Sunday 1 Nov): Monday still opens at 08:00 local.
        (NY, ny(2026, 3, 6, 17, 0), 2, ny(2026, 3, 9, 9, 0)),
        (NY, ny(2026, 10, 30, 17, 0), 2, ny(2026, 11, 2, 9, 0)),
    ],
)
def test_add_business_time(cal: BusinessCalendar, start: datetime, hours: float, expected: datetime) -> None:
    got = cal.add_business_time(start, timedelta(hours=hours))
    assert got == expected
    assert got.tzinfo is UTC
    assert cal.business_time_between(start, got) == timedelta(hours=hours)


def test_dst_days_keep_local_hours() -> None:
    """A business day is 08:00-18:00 local on DST days too (the instants shift, the wall clock does not)."""
    assert EVERY_DAY.next_open(berlin(2026, 3, 29, 0, 0)) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert EVERY_DAY.next_open(berlin(2026, 3, 28, 0, 0)) == datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    assert EVERY_DAY.next_open(berlin(2026, 10, 25, 0, 0)) == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)
    assert NY.next_open(ny(2026, 3, 7, 0, 0)) == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    assert NY.next_open(ny(2026, 3, 6, 0, 0)) == datetime(2026, 3, 6, 13, 0, tzinfo=UTC)


def test_hours_inside_the_dst_gap_and_overlap() -> None:
    # 02:00 does not exist on 29 Mar in Berlin: it is read as 03:00 CEST, so 02:00-04:00 is one hour.
    night = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=ALL_WEEK, open="02:00", close="04:00")
    assert night.business_time_between(berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 29, 12, 0)) == timedelta(hours=1)
    assert night.business_time_between(berlin(2026, 3, 28, 0, 0), berlin(2026, 3, 28, 12, 0)) == timedelta(hours=2)
    # 02:00 occurs twice on 25 Oct: the first one counts, so 01:00-04:00 lasts four hours.
    late = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=ALL_WEEK, open="01:00", close="04:00")
    assert late.business_time_between(berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 25, 12, 0)) == timedelta(hours=4)


@pytest.mark.parametrize(
    ("start", "end", "expected_hours"),
    [
        (berlin(2026, 3, 27, 16, 0), berlin(2026, 3, 30, 10, 0), 4),
        (berlin(2026, 3, 27, 18, 0), berlin(2026, 3, 30, 8, 0), 0),    # whole weekend
        (berlin(2026, 3, 23, 0, 0), berlin(2026, 3, 30, 0, 0), 50),    # one work week
        (berlin(2026, 12, 21, 0, 0), berlin(2026, 12, 28, 0, 0), 30),  # with two holidays
        (berlin(2026, 3, 30, 10, 0), berlin(2026, 3, 27, 16, 0), 0),   # reversed: zero
        (berlin(2026, 3, 30, 10, 0), berlin(2026, 3, 30, 10, 0), 0),
    ],
)
def test_business_time_between(start: datetime, end: datetime, expected_hours: int) -> None:
    assert CAL.business_time_between(start, end) == timedelta(hours=expected_hours)


def test_zero_duration_is_start() -> None:
    assert CAL.add_business_time(berlin(2026, 3, 28, 12, 0), timedelta(0)) == berlin(2026, 3, 28, 12, 0)
    with pytest.raises(ValueError, match="negative"):
        CAL.add_business_time(berlin(2026, 3, 28, 12, 0), timedelta(hours=-1))


@pytest.mark.parametrize(
    ("cal", "at", "now", "expected"),
    [
        (CAL, berlin(2026, 11, 30, 8, 0), berlin(2026, 11, 30, 6, 0), "08:00 today (Europe/Berlin)"),
        (CAL, berlin(2026, 11, 27, 8, 0), berlin(2026, 11, 26, 19, 0), "08:00 tomorrow (Europe/Berlin)"),
        (CAL, berlin(2026, 11, 30, 8, 0), berlin(2026, 11, 27, 19, 0), "08:00 on Monday 30 Nov (Europe/Berlin)"),
        (CAL, berlin(2027, 1, 4, 8, 0), berlin(2026, 12, 31, 19, 0), "08:00 on Monday 4 Jan 2027 (Europe/Berlin)"),
        # Days are counted in the calendar's zone: 23:30 UTC is already "tomorrow" in Berlin.
        (CAL, berlin(2026, 11, 27, 8, 0), datetime(2026, 11, 26, 23, 30, tzinfo=UTC), "08:00 today (Europe/Berlin)"),
        (UTC_CAL, datetime(2026, 11, 30, 9, 0, tzinfo=UTC), datetime(2026, 11, 29, 9, 0, tzinfo=UTC), "09:00 tomorrow"),
    ],
)
def test_describe(cal: BusinessCalendar, at: datetime, now: datetime, expected: str) -> None:
    assert cal.describe(at, now=now) == expected


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 27, 12, 0)
    aware = berlin(2026, 3, 27, 12, 0)
    for call in (
        lambda: CAL.is_open(naive),
        lambda: CAL.next_open(naive),
        lambda: CAL.add_business_time(naive, timedelta(hours=1)),
        lambda: CAL.business_time_between(naive, aware),
        lambda: CAL.business_time_between(aware, naive),
        lambda: CAL.describe(naive, now=aware),
        lambda: CAL.describe(aware, now=naive),
    ):
        with pytest.raises(ValueError, match="naive"):
            call()


def test_a_year_of_holidays_raises_instead_of_looping() -> None:
    every_day_2026 = [date(2026, 1, 1) + timedelta(days=n) for n in range(400)]
    cal = BusinessCalendar.build(timezone="UTC", weekdays=WORKWEEK, open="08:00", close="18:00",
                                 holidays=every_day_2026)
    with pytest.raises(ValueError, match="no open day in the year after 2026-01-01"):
        cal.next_open(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="no open day"):
        cal.add_business_time(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))
    assert cal.business_time_between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)) == timedelta(0)
    assert cal.next_open(datetime(2027, 3, 1, tzinfo=UTC)) == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown IANA time zone"),
        ({"open": "18:00", "close": "08:00"}, "must be after open"),
        ({"open": "8:00"}, "HH:MM"),
        ({"close": "24:30"}, "HH:MM"),
        ({"weekdays": ["mon", "funday"]}, "unknown weekday"),
        ({"weekdays": []}, "at least one weekday"),
    ],
)
def test_build_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"timezone": "UTC", "weekdays": WORKWEEK, "open": "08:00", "close": "18:00", **kwargs}
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.build(**args)  # type: ignore[arg-type]


def test_full_weekday_names_are_accepted() -> None:
    cal = BusinessCalendar.build(timezone="UTC", weekdays=["Monday", "SAT"], open="08:00", close="09:00")
    assert cal.weekdays == frozenset({0, 5})


# -- properties ------------------------------------------------------------------------------------

STARTS = st.datetimes(min_value=datetime(2026, 3, 1), max_value=datetime(2026, 11, 30), timezones=st.just(UTC))
DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=200))


@settings(max_examples=300, deadline=None)
@given(start=STARTS, duration=DURATIONS, cal=st.sampled_from([CAL, EVERY_DAY, NY]))
def test_add_and_between_are_inverse(start: datetime, duration: timedelta, cal: BusinessCalendar) -> None:
    deadline = cal.add_business_time(start, duration)
    assert deadline >= start
    assert cal.business_time_between(start, deadline) == duration


@settings(max_examples=300, deadline=None)
@given(start=STARTS, span=DURATIONS, cal=st.sampled_from([CAL, EVERY_DAY, NY]))
def test_between_then_add_reaches_the_last_open_moment(start: datetime, span: timedelta, cal: BusinessCalendar) -> None:
    end = start + span
    worked = cal.business_time_between(start, end)
    reached = cal.add_business_time(start, worked)
    assert reached <= end
    assert cal.business_time_between(reached, end) == timedelta(0)
    if cal.is_open(end):
        assert reached == end


def test_round_the_clock_with_close_at_24_00() -> None:
    always = BusinessCalendar.build(timezone="Europe/Berlin", weekdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                    open="00:00", close="24:00")
    for at in (datetime(2026, 11, 28, 22, 59, 59, 999999, tzinfo=UTC), datetime(2026, 11, 28, 23, 0, tzinfo=UTC),
               datetime(2026, 3, 29, 1, 30, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)):
        assert always.is_open(at) and always.next_open(at) == at
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    assert always.add_business_time(start, timedelta(hours=72)) == start + timedelta(hours=72)
    late = BusinessCalendar.build(timezone="UTC", weekdays=["fri"], open="20:00", close="24:00")
    assert late.is_open(datetime(2026, 11, 27, 23, 59, tzinfo=UTC))
    assert not late.is_open(datetime(2026, 11, 28, 0, 0, tzinfo=UTC))
    assert late.add_business_time(datetime(2026, 11, 27, 22, 0, tzinfo=UTC), timedelta(hours=3)) == \
        datetime(2026, 12, 4, 21, 0, tzinfo=UTC)
