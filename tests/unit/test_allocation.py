import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import split_by_weight, split_pro_rata

weights_st = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.integers(min_value=0, max_value=10_000),
    min_size=1,
    max_size=40,
).filter(lambda w: sum(w.values()) > 0)


@given(amount=st.integers(min_value=0, max_value=10**12), weights=weights_st)
def test_parts_add_up_exactly_and_stay_within_one_fen_of_exact(amount, weights):
    parts = split_by_weight(amount, weights)
    assert sum(parts.values()) == amount
    total = sum(weights.values())
    for key, weight in weights.items():
        exact_floor = amount * weight // total
        assert parts[key] in (exact_floor, exact_floor + 1)
        if weight == 0:
            assert parts[key] == 0


@given(amount=st.integers(min_value=0, max_value=10**9), weights=weights_st)
def test_split_is_deterministic(amount, weights):
    assert split_by_weight(amount, weights) == split_by_weight(amount, dict(weights))


def test_leftover_goes_to_largest_remainder_then_first_listed():
    # 100 fen over three equal weights: 33 each, the one leftover fen to the first.
    assert split_by_weight(100, {"SJ-001": 1, "SJ-002": 1, "SJ-003": 1}) == {
        "SJ-001": 34,
        "SJ-002": 33,
        "SJ-003": 33,
    }
    # 2000 fen by land mu 3:1:1 → 1200, 400, 400.
    assert split_by_weight(2000, {"a": 3, "b": 1, "c": 1}) == {"a": 1200, "b": 400, "c": 400}


@given(
    parts=st.dictionaries(
        st.integers(0, 500), st.integers(0, 10**6), min_size=1, max_size=20
    ).filter(lambda p: sum(p.values()) > 0),
    data=st.data(),
)
def test_pro_rata_refund_never_exceeds_original(parts, data):
    refund = data.draw(st.integers(min_value=0, max_value=sum(parts.values())))
    shares = split_pro_rata(refund, parts)
    assert sum(shares.values()) == refund
    assert all(shares[k] <= parts[k] for k in parts)


@pytest.mark.parametrize(
    "amount, weights",
    [(-1, {"a": 1}), (1.5, {"a": 1}), (10, {"a": -1}), (10, {"a": 0}), (10, {"a": 1.0})],
)
def test_bad_input_is_refused(amount, weights):
    with pytest.raises(ValueError):
        split_by_weight(amount, weights)
