"""Rating scales: parsing `LOW-HIGH[/STEP]` and checking ratings against it (pure, no servers)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readrate.events.errors import ConfigError, InvalidEvent, ReadrateError
from readrate.events.scale import WHOLE_STARS, RatingScale

HALF_STARS = RatingScale.parse("0.5-5/0.5")


# -- parsing a scale -----------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "low", "high", "step"),
    [
        ("1-5", "1", "5", "1"),
        ("0.5-5/0.5", "0.5", "5", "0.5"),
        (" 1 - 10 / 1 ", "1", "10", "1"),
        ("0-100/25", "0", "100", "25"),
    ],
)
def test_a_scale_is_parsed_from_low_high_and_an_optional_step(spec, low, high, step):
    scale = RatingScale.parse(spec)

    assert (scale.low, scale.high, scale.step) == (Decimal(low), Decimal(high), Decimal(step))


@pytest.mark.parametrize("spec", ["1-5", "0.5-5/0.5", "0-100/25"])
def test_a_scale_prints_as_the_spec_it_was_parsed_from(spec):
    assert str(RatingScale.parse(spec)) == spec
    assert RatingScale.parse(str(RatingScale.parse(spec))) == RatingScale.parse(spec)


def test_whole_stars_are_the_default_scale():
    assert WHOLE_STARS == RatingScale.parse("1-5")
    assert WHOLE_STARS.values() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_half_stars_have_ten_values_from_one_half_to_five():
    assert HALF_STARS.values() == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]


@pytest.mark.parametrize("spec", ["", "abc", "1", "1-", "-5", "1-5/", "1..2-5", "one-five", "1-5/0.5/2"])
def test_a_scale_that_is_not_low_high_step_is_refused_quoting_it(spec):
    with pytest.raises(ConfigError) as caught:
        RatingScale.parse(spec)

    assert repr(spec) in str(caught.value)
    assert "LOW-HIGH" in str(caught.value)


@pytest.mark.parametrize("spec", ["5-1", "3-3", "1-5/3", "1-5/0", "0.5-5/0.0", "1-2/0.3"])
def test_a_scale_whose_step_does_not_fit_between_low_and_high_is_refused(spec):
    with pytest.raises(ConfigError) as caught:
        RatingScale.parse(spec)

    assert repr(spec) in str(caught.value)


def test_a_scale_of_more_than_a_thousand_steps_is_refused():
    with pytest.raises(ConfigError, match="more than 1000 steps"):
        RatingScale.parse("0-10000/0.5")


def test_a_config_error_is_a_readrate_error():
    with pytest.raises(ReadrateError):
        RatingScale.parse("stars")


# -- checking ratings ----------------------------------------------------------


@pytest.mark.parametrize("rating", ["1", "2", "3", "4", "5", 1, 5, 3.0, "4.0", Decimal(2), b"3"])
def test_a_whole_star_rating_is_accepted_as_a_float(rating):
    value = WHOLE_STARS.check(rating)

    assert isinstance(value, float)
    assert value == float(Decimal(rating.decode() if isinstance(rating, bytes) else str(rating)))


@pytest.mark.parametrize("rating", ["0.5", "1.5", "4.5", "5", 0.5, 2.5, "3.50", Decimal("4.5")])
def test_a_half_star_rating_is_accepted_on_the_half_star_scale(rating):
    assert HALF_STARS.check(rating) == float(str(rating))


@pytest.mark.parametrize(
    "rating",
    [0, 6, "0", "6", "4.3", 4.3, "4.5", 4.5, "10", "5.0001", 100000],
)
def test_a_vote_is_refused_when_rating_is_off_the_whole_star_scale(rating):
    with pytest.raises(InvalidEvent) as caught:
        WHOLE_STARS.check(rating)

    message = str(caught.value)
    assert repr(str(rating)) in message, "the message quotes the value as given"
    assert "1, 2, 3, 4, 5" in message, "the message says what is accepted"


@pytest.mark.parametrize("rating", ["0", "5.5", "4.25", 0.25, "0.0"])
def test_a_vote_is_refused_when_rating_is_off_the_half_star_scale(rating):
    with pytest.raises(InvalidEvent) as caught:
        HALF_STARS.check(rating)

    assert repr(str(rating)) in str(caught.value)
    assert "0.5, 1, 1.5" in str(caught.value)


@pytest.mark.parametrize(
    ("rating", "quoted"),
    [
        ("abc", "'abc'"),
        ("NaN", "'NaN'"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
        ("Infinity", "'Infinity'"),
        ("", "''"),
        ("-1", "'-1'"),
        (-1, "'-1'"),
        (-0.5, "'-0.5'"),
        (float("nan"), "'nan'"),
        (float("inf"), "'inf'"),
        (float("-inf"), "'-inf'"),
        (" 4", "' 4'"),
        ("4 ", "'4 '"),
        ("4,5", "'4,5'"),
        ("1e0", "'1e0'"),
        ("+4", "'+4'"),
        ("0x4", "'0x4'"),
    ],
)
def test_a_vote_is_refused_when_rating_is_not_a_plain_decimal(rating, quoted):
    with pytest.raises(InvalidEvent) as caught:
        WHOLE_STARS.check(rating)

    assert quoted in str(caught.value)
    assert "accepted: 1, 2, 3, 4, 5" in str(caught.value)


@pytest.mark.parametrize("rating", [True, False, None, [4], object()])
def test_a_rating_of_another_type_is_refused(rating):
    with pytest.raises(InvalidEvent):
        WHOLE_STARS.check(rating)


@pytest.mark.parametrize("rating", [4.0000001, 4.0000000001, 2.9999999, 1 + 2**-40])
def test_a_float_rating_a_hair_off_a_whole_star_is_refused_not_rounded(rating):
    # Formatting the float with six decimals would round it onto the scale and count a 4.0000001 as a 4.
    with pytest.raises(InvalidEvent):
        WHOLE_STARS.check(rating)


def test_a_float_rating_is_quoted_as_written_not_padded_with_zeros():
    with pytest.raises(InvalidEvent) as caught:
        WHOLE_STARS.check(4.3)

    assert "'4.3'" in str(caught.value)


def test_a_wide_scale_describes_its_accepted_ratings_as_a_range():
    scale = RatingScale.parse("0-100/0.5")

    assert scale.describe() == "0 to 100 in steps of 0.5"
    with pytest.raises(InvalidEvent, match="accepted: 0 to 100 in steps of 0.5"):
        scale.check("100.25")


def test_a_refused_rating_is_not_remembered_as_valid_after_many_checks():
    for _ in range(3):
        with pytest.raises(InvalidEvent):
            WHOLE_STARS.check("7")
    assert WHOLE_STARS.check("5") == 5.0
    assert WHOLE_STARS.check("5") == 5.0


# -- properties ----------------------------------------------------------------

SCALES = st.sampled_from([WHOLE_STARS, HALF_STARS, RatingScale.parse("0-10"), RatingScale.parse("1-2/0.25")])


@given(SCALES, st.data())
def test_every_value_of_a_scale_is_accepted_in_its_decimal_form(scale, data):
    value = data.draw(st.sampled_from(scale.values()))
    text = format(Decimal(str(value)).normalize(), "f")

    assert scale.check(text) == value
    assert scale.check(value) == value


@given(SCALES, st.decimals(min_value=-20, max_value=20, places=3, allow_nan=False, allow_infinity=False))
def test_a_decimal_is_accepted_exactly_when_it_lies_on_the_grid(scale, number):
    on_grid = scale.low <= number <= scale.high and (number - scale.low) % scale.step == 0
    text = format(number, "f")

    if on_grid:
        assert scale.check(text) == float(number)
    else:
        with pytest.raises(InvalidEvent):
            scale.check(text)


@given(st.text(max_size=12))
def test_checking_any_text_either_gives_a_value_on_the_scale_or_refuses_it(text):
    try:
        value = HALF_STARS.check(text)
    except InvalidEvent as exc:
        assert repr(text) in str(exc)
    else:
        assert value in HALF_STARS.values()
