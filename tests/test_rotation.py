"""Table and property tests for rotations, overrides and who is on call (routing.oncall)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.oncall import OnCall, Override, Person, Rotation, find_person, on_call

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ANN = Person("Ann", slack="U01ANN")
BOB = Person("Bob", slack="U02BOB", teams="aad-bob")
CY = Person("Cy", teams="aad-cy")
DEE = Person("Dee", slack="U04DEE")

# Weekly, Monday 09:00 Berlin; the first shift (Ann) starts Monday 23 March 2026, the week of spring-forward.
WEEKLY = Rotation.build(people=[ANN, BOB, CY], timezone="Europe/Berlin", handoff_time="09:00", period="weekly",
                        start=date(2026, 3, 23))
DAILY = Rotation.build(people=[ANN, BOB], timezone="Europe/Berlin", handoff_time="09:00", period="daily",
                       start=date(2026, 10, 20))
SECONDARY = Rotation.build(people=[DEE], timezone="UTC", handoff_time="00:00", period="weekly", start=date(2026, 1, 5))
EMPTY = Rotation.build(people=[], timezone="UTC", handoff_time="09:00", period="weekly", start=date(2026, 1, 5))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)  # type: ignore[arg-type,misc]


@pytest.mark.parametrize(
    ("rotation", "at", "person", "starts", "ends"),
    [
        # The first shift starts at the hand-off on `start` and belongs to people[0].
        (WEEKLY, berlin(2026, 3, 23, 9, 0), ANN, berlin(2026, 3, 23, 9, 0), berlin(2026, 3, 30, 9, 0)),
        # It spans spring-forward (Sunday 29 March): 167 hours, still Monday 09:00 to Monday 09:00 local.
        (WEEKLY, berlin(2026, 3, 30, 8, 59), ANN, berlin(2026, 3, 23, 9, 0), berlin(2026, 3, 30, 9, 0)),
        (WEEKLY, berlin(2026, 3, 30, 9, 0), BOB, berlin(2026, 3, 30, 9, 0), berlin(2026, 4, 6, 9, 0)),
        (WEEKLY, berlin(2026, 4, 8, 3, 0), CY, berlin(2026, 4, 6, 9, 0), berlin(2026, 4, 13, 9, 0)),
        (WEEKLY, berlin(2026, 4, 13, 9, 0), ANN, berlin(2026, 4, 13, 9, 0), berlin(2026, 4, 20, 9, 0)),
        # Before `start` the cycle runs backwards: the week before belongs to the last person.
        (WEEKLY, berlin(2026, 3, 23, 8, 59), CY, berlin(2026, 3, 16, 9, 0), berlin(2026, 3, 23, 9, 0)),
        (WEEKLY, berlin(2026, 3, 10, 12, 0), BOB, berlin(2026, 3, 9, 9, 0), berlin(2026, 3, 16, 9, 0)),
        # Daily across fall-back (Sunday 25 Oct): that shift lasts 25 hours, hand-off stays at 09:00 local.
        (DAILY, berlin(2026, 10, 24, 9, 0), ANN, berlin(2026, 10, 24, 9, 0), berlin(2026, 10, 25, 9, 0)),
        (DAILY, berlin(2026, 10, 25, 8, 30), ANN, berlin(2026, 10, 24, 9, 0), berlin(2026, 10, 25, 9, 0)),
        (DAILY, berlin(2026, 10, 25, 9, 0), BOB, berlin(2026, 10, 25, 9, 0), berlin(2026, 10, 26, 9, 0)),
    ],
)
def test_shift_at(rotation: Rotation, at: datetime, person: Person, starts: datetime, ends: datetime) -> None:
    shift = rotation.shift_at(at)
    assert shift is not None
    assert (shift.person, shift.starts_at, shift.ends_at) == (person, starts, ends)
    assert rotation.people[shift.index] == person
    assert shift.starts_at.tzinfo is UTC


def test_dst_shift_lengths() -> None:
    spring = WEEKLY.shift_at(berlin(2026, 3, 25, 12, 0))
    fall = DAILY.shift_at(berlin(2026, 10, 24, 12, 0))
    assert spring is not None and fall is not None
    assert spring.ends_at - spring.starts_at == timedelta(hours=167)
    assert fall.ends_at - fall.starts_at == timedelta(hours=25)


def test_handoff_inside_the_dst_gap_moves_with_the_clock() -> None:
    # 02:30 does not exist on 8 March 2026 in New York: that hand-off happens at 03:30 EDT (07:30 UTC).
    night = Rotation.build(people=[ANN, BOB], timezone="America/New_York", handoff_time="02:30", period="daily",
                           start=date(2026, 3, 1))
    shift = night.shift_at(datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    assert shift is not None
    assert shift.starts_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert shift.ends_at == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # 02:30 EDT


def test_after_is_the_next_in_turn() -> None:
    assert WEEKLY.after(berlin(2026, 3, 24, 12, 0)) == BOB
    assert WEEKLY.after(berlin(2026, 4, 8, 12, 0)) == ANN  # wraps
    assert SECONDARY.after(datetime(2026, 3, 1, tzinfo=UTC)) is None  # one person: nobody after


def test_empty_rotation() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert EMPTY.shift_at(at) is None
    assert EMPTY.after(at) is None
    assert on_call(rotation=EMPTY, secondary=None, overrides=[], at=at) == OnCall(
        primary=None, next=None, secondary=None, until=None, source="none")


def test_build_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="daily or weekly"):
        Rotation.build(people=[ANN], timezone="UTC", handoff_time="09:00", period="monthly", start=date(2026, 1, 1))
    with pytest.raises(ValueError, match="IANA"):
        Rotation.build(people=[ANN], timezone="Berlin", handoff_time="09:00", period="daily", start=date(2026, 1, 1))
    with pytest.raises(ValueError, match="HH:MM"):
        Rotation.build(people=[ANN], timezone="UTC", handoff_time="9am", period="daily", start=date(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        WEEKLY.shift_at(datetime(2026, 3, 24, 12, 0))


# -- on_call ---------------------------------------------------------------------------------------

AT = berlin(2026, 3, 24, 12, 0)  # Ann's first week; Bob is next


def test_rotation_only() -> None:
    got = on_call(rotation=WEEKLY, secondary=SECONDARY, overrides=[], at=AT)
    assert got == OnCall(primary=ANN, next=BOB, secondary=DEE, until=berlin(2026, 3, 30, 9, 0), source="rotation")


def test_override_wins_and_next_skips_the_override_person() -> None:
    bob_covers = Override(BOB, berlin(2026, 3, 24, 8, 0), berlin(2026, 3, 25, 8, 0))
    got = on_call(rotation=WEEKLY, secondary=None, overrides=[bob_covers], at=AT)
    # Bob would be next after Ann; he is already primary, so the one after him is next.
    assert got == OnCall(primary=BOB, next=CY, secondary=None, until=berlin(2026, 3, 25, 8, 0), source="override")


def test_override_by_someone_outside_the_rotation() -> None:
    dee = Override(DEE, berlin(2026, 3, 24, 8, 0), berlin(2026, 3, 24, 20, 0))
    got = on_call(rotation=WEEKLY, secondary=None, overrides=[dee], at=AT)
    assert (got.primary, got.next, got.source) == (DEE, BOB, "override")


def test_override_matched_by_chat_id_skips_too() -> None:
    bob_by_id = Person("U02BOB", slack="U02BOB")  # how an override from `@bob` in chat may look
    got = on_call(rotation=WEEKLY, secondary=None,
                  overrides=[Override(bob_by_id, berlin(2026, 3, 24, 8, 0), berlin(2026, 3, 25, 8, 0))], at=AT)
    assert got.next == CY


def test_overlapping_overrides_the_latest_created_wins() -> None:
    long = Override(CY, berlin(2026, 3, 24, 0, 0), berlin(2026, 3, 26, 0, 0))
    short = Override(DEE, berlin(2026, 3, 24, 10, 0), berlin(2026, 3, 24, 14, 0))
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[long, short], at=AT).primary == DEE
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[short, long], at=AT).primary == CY
    # After the short one ends, the long one holds again.
    later = on_call(rotation=WEEKLY, secondary=None, overrides=[long, short], at=berlin(2026, 3, 24, 14, 0))
    assert (later.primary, later.until) == (CY, berlin(2026, 3, 26, 0, 0))


def test_until_is_when_the_primary_changes() -> None:
    long = Override(CY, berlin(2026, 3, 24, 0, 0), berlin(2026, 3, 26, 0, 0))
    short = Override(DEE, berlin(2026, 3, 24, 15, 0), berlin(2026, 3, 24, 18, 0))
    # A later-created override starting inside the current one ends its reign early.
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[long, short], at=AT).until == berlin(2026, 3, 24, 15, 0)
    # An older override starting later does not (the newer one still wins then).
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[short, long], at=AT).until == berlin(2026, 3, 26, 0, 0)
    # Rotation: the shift ends, or an override starts before that.
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[short], at=AT).until == berlin(2026, 3, 24, 15, 0)


def test_override_boundaries_are_half_open() -> None:
    o = Override(DEE, berlin(2026, 3, 24, 10, 0), berlin(2026, 3, 24, 14, 0))
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[o], at=berlin(2026, 3, 24, 10, 0)).primary == DEE
    assert on_call(rotation=WEEKLY, secondary=None, overrides=[o], at=berlin(2026, 3, 24, 14, 0)).primary == ANN


def test_override_on_an_empty_rotation() -> None:
    o = Override(DEE, berlin(2026, 3, 24, 10, 0), berlin(2026, 3, 24, 14, 0))
    during = on_call(rotation=EMPTY, secondary=None, overrides=[o], at=AT)
    assert (during.primary, during.next, during.source) == (DEE, None, "override")
    before = on_call(rotation=EMPTY, secondary=None, overrides=[o], at=berlin(2026, 3, 24, 9, 0))
    assert (before.primary, before.source, before.until) == (None, "none", berlin(2026, 3, 24, 10, 0))


def test_two_people_and_the_other_covers() -> None:
    pair = Rotation.build(people=[ANN, BOB], timezone="UTC", handoff_time="09:00", period="weekly", start=date(2026, 3, 23))
    got = on_call(rotation=pair, secondary=None,
                  overrides=[Override(BOB, berlin(2026, 3, 24, 0, 0), berlin(2026, 3, 25, 0, 0))], at=AT)
    assert (got.primary, got.next) == (BOB, ANN)
    single = Rotation.build(people=[ANN], timezone="UTC", handoff_time="09:00", period="weekly", start=date(2026, 3, 23))
    assert on_call(rotation=single, secondary=None, overrides=[], at=AT).next is None


def test_naive_override_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        on_call(rotation=WEEKLY, secondary=None,
                overrides=[Override(BOB, datetime(2026, 3, 24), datetime(2026, 3, 25))], at=AT)


# -- find_person -----------------------------------------------------------------------------------

PEOPLE = [ANN, BOB, CY]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ann", ANN),
        ("ann", ANN),
        ("@bob", BOB),
        ("  CY ", CY),
        ("U01ANN", ANN),
        ("aad-cy", CY),
        ("slack:U02BOB", BOB),
        ("teams:aad-bob", BOB),
        ("Teams:aad-cy", CY),
        ("<@U02BOB>", BOB),
        ("<@U01ANN|ann.smith>", ANN),
        ("<@U99NOPE|ann>", None),   # a mention names an id; the label does not count
        ("slack:aad-cy", None),     # a Teams id is not a Slack id
        ("teams:", None),
        ("Zed", None),
        ("", None),
    ],
)
def test_find_person(text: str, expected: Person | None) -> None:
    assert find_person(PEOPLE, text) == expected


def test_user_on() -> None:
    assert (BOB.user_on("slack"), BOB.user_on("teams"), BOB.user_on("console")) == ("U02BOB", "aad-bob", None)
    assert ANN.user_on("teams") is None


# -- properties ------------------------------------------------------------------------------------

INSTANTS = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))
ROTATIONS = st.sampled_from([
    WEEKLY, DAILY,
    Rotation.build(people=[ANN, BOB, CY, DEE], timezone="America/New_York", handoff_time="02:30", period="daily",
                   start=date(2026, 3, 1)),
    Rotation.build(people=[ANN, BOB], timezone="Europe/Berlin", handoff_time="02:30", period="weekly",
                   start=date(2026, 3, 29)),
])


@settings(max_examples=300, deadline=None)
@given(at=INSTANTS, rotation=ROTATIONS)
def test_shifts_cover_time_without_gaps(at: datetime, rotation: Rotation) -> None:
    shift = rotation.shift_at(at)
    assert shift is not None
    assert shift.starts_at <= at < shift.ends_at
    following = rotation.shift_at(shift.ends_at)
    assert following is not None
    assert following.starts_at == shift.ends_at
    assert following.index == (shift.index + 1) % len(rotation.people)
    assert rotation.after(at) == following.person
    local_start = shift.starts_at.astimezone(rotation.tz)
    assert (local_start.date() - rotation.start).days % rotation.period_days == 0
