"""Allocation, exploration, holdout and pacing: hard rules hold on planted violations, the allocator is
within 0.1 % of the exact MILP, and logged propensities are the true probabilities."""

from __future__ import annotations

import dataclasses
import functools
from datetime import date

import numpy as np
import pytest

from bench.allocation import make_instance
from ml.delivery.allocation import AllocationConfig, CandidateSet, allocate, solve_exact_milp
from ml.delivery.policy import action_probabilities, exploration_reserve, explore, holdout_mask, pace_budget

PUSH, EMAIL, SMS = 0, 1, 2


def _picked_rows(result) -> np.ndarray:
    return result.chosen[result.chosen >= 0]


def _tiny(value, cost, channel, users, n_users, **extra) -> CandidateSet:
    return CandidateSet(
        user_index=np.asarray(users), value=np.asarray(value, float), cost=np.asarray(cost, float),
        channel=np.asarray(channel), n_users=n_users, n_channels=3, **extra,
    )


def test_no_consent_means_never_that_channel():
    # user 0's best action is SMS, but user 0 has not consented to SMS
    cands = _tiny([5.0, 1.0, 4.0], [0.1, 0.1, 0.1], [SMS, PUSH, SMS], [0, 0, 1], 2,
                  consent=np.array([[True, True, False], [True, True, True]]))
    result = allocate(cands, AllocationConfig(budget=10.0))
    assert result.chosen[0, 0] == 1 and result.chosen[1, 0] == 2


def test_random_instances_respect_every_hard_rule():
    cands, cfg = make_instance(3000, 8, seed=3)
    result = allocate(cands, cfg)
    rows = _picked_rows(result)
    users = cands.user_index[rows]
    assert cands.consent[users, cands.channel[rows]].all()
    assert cands.eligible[rows].all()
    assert (cands.value[rows] > 0).all()
    assert (cands.remaining_cap[users] > 0).all()
    assert np.bincount(users).max() <= cfg.max_per_user
    assert cands.cost[rows].sum() <= cfg.budget + 1e-9
    assert np.count_nonzero(cands.channel[rows] == SMS) <= cfg.channel_quota[SMS]
    assert result.channel_counts[SMS] == cfg.channel_quota[SMS]  # the quota binds in this instance
    assert result.spend == pytest.approx(cands.cost[rows].sum())
    assert 0 <= result.gap < 1e-3 and result.lp_bound_method == "highs_lp"
    # HiGHS out of time (a 100k-user plan ran over 10 minutes in it): the dual bound certifies instead.
    hurried = allocate(cands, dataclasses.replace(cfg, lp_time_limit_s=1e-9))
    assert hurried.lp_bound_method == "lagrangian_dual" and np.array_equal(hurried.chosen, result.chosen)
    assert hurried.lp_bound >= result.lp_bound - 1e-6 * abs(result.lp_bound) and 0 <= hurried.gap < 1e-2


def test_capped_user_is_never_contacted():
    cands = _tiny([9.0, 1.0], [0.0, 0.0], [PUSH, PUSH], [0, 1], 2, remaining_cap=np.array([0, 1]))
    result = allocate(cands, AllocationConfig(budget=100.0))
    assert result.chosen[0, 0] == -1 and result.chosen[1, 0] == 1


def test_small_budget_and_nothing_fits():
    cands = _tiny([3.0, 2.0, 0.9], [2.0, 1.5, 1.0], [PUSH, PUSH, EMAIL], [0, 1, 2], 3)
    small = allocate(cands, AllocationConfig(budget=2.6))
    assert small.spend <= 2.6 and small.objective == pytest.approx(3.0)  # {user 0} beats {1, 2}: 3 > 2.9
    empty = allocate(cands, AllocationConfig(budget=0.5))
    assert (empty.chosen == -1).all() and empty.spend == 0 and empty.objective == 0


def test_channel_quota_respected():
    n = 50
    cands = _tiny(np.full(n, 2.0), np.zeros(n), np.full(n, SMS), np.arange(n), n)
    result = allocate(cands, AllocationConfig(budget=1.0, channel_quota={SMS: 7}))
    assert result.channel_counts[SMS] == 7 and (result.chosen >= 0).sum() == 7


def test_negative_values_never_chosen():
    cands = _tiny([-1.0, 0.0, -0.5], [0.0, 0.0, 0.0], [PUSH, EMAIL, SMS], [0, 0, 1], 2)
    result = allocate(cands, AllocationConfig(budget=100.0))
    assert (result.chosen == -1).all()


def test_max_per_user_two_picks_best_two():
    cands = _tiny([1.0, 3.0, 2.0, 0.5], [0.0] * 4, [PUSH, EMAIL, SMS, PUSH], [0, 0, 0, 1], 2)
    result = allocate(cands, AllocationConfig(budget=1.0, max_per_user=2))
    assert sorted(result.chosen[0].tolist()) == [1, 2] and result.chosen[1].tolist() == [3, -1]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="sorted ascending"):
        allocate(_tiny([1.0, 1.0], [0.0, 0.0], [0, 0], [1, 0], 2), AllocationConfig(budget=1.0))
    with pytest.raises(ValueError, match="cost is negative at row 1"):
        allocate(_tiny([1.0, 1.0], [0.0, -1.0], [0, 0], [0, 1], 2), AllocationConfig(budget=1.0))
    with pytest.raises(ValueError, match="channel_quota has channel 5"):
        allocate(_tiny([1.0], [0.0], [0], [0], 1), AllocationConfig(budget=1.0, channel_quota={5: 3}))


@pytest.mark.parametrize("seed", range(20))
def test_matches_exact_milp_within_a_tenth_of_a_percent(seed):
    cands, cfg = make_instance(500, 5, seed=seed)
    result = allocate(cands, cfg)
    exact = solve_exact_milp(cands, cfg)
    assert result.spend <= cfg.budget + 1e-9
    assert result.objective <= exact.objective + 1e-9 <= result.lp_bound + 1e-6
    assert (exact.objective - result.objective) / exact.objective <= 1e-3


def test_sampled_path_matches_direct_and_is_deterministic():
    cands, cfg = make_instance(20_000, 6, seed=9)
    sampled = allocate(cands, dataclasses.replace(cfg, sample_users=1_500, compute_lp_bound=False))
    direct = allocate(cands, dataclasses.replace(cfg, sample_users=10**9))  # HiGHS LP bound
    again = allocate(cands, dataclasses.replace(cfg, sample_users=1_500, compute_lp_bound=False))
    assert np.array_equal(sampled.chosen, again.chosen)
    assert sampled.spend <= cfg.budget + 1e-9 and sampled.channel_counts[SMS] <= cfg.channel_quota[SMS]
    assert (direct.lp_bound - sampled.objective) / direct.lp_bound < 1e-4


def test_holdout_is_stable_and_about_five_percent():
    ids = [f"user-{i}" for i in range(40_000)]
    mask = holdout_mask(ids)
    assert 0.045 < mask.mean() < 0.055
    shuffled = np.random.default_rng(0).permutation(len(ids))
    assert np.array_equal(holdout_mask([ids[i] for i in shuffled]), mask[shuffled])


def _exploration_setup():
    users = np.array([0, 0, 0, 1, 1, 2])
    eligible = np.array([True, True, False, True, True, True])
    greedy = np.array([1, -1, 5, -1])  # user 3 has no rows
    return users, eligible, greedy


def test_exploration_probabilities_sum_to_one_and_match_frequencies():
    users, eligible, greedy = _exploration_setup()
    row_prob, nothing_prob = action_probabilities(users, eligible, greedy, 4, epsilon=0.3)
    assert np.allclose(np.bincount(users, row_prob, minlength=4) + nothing_prob, 1.0)
    assert row_prob[2] == 0 and nothing_prob[3] == 1.0
    draws = 4000
    counts = np.zeros(7)  # rows 0..5, then "nothing" for user 0
    for s in range(draws):
        out = explore(users, eligible, np.zeros(6), np.zeros(6, int), greedy, 4, date(2024, 5, 1), 0.3, seed=s)
        assert out.action[3] == -1 and out.propensity[3] == 1.0
        assert out.action[0] != 2  # ineligible row never explored
        counts[out.action[0] if out.action[0] >= 0 else 6] += 1
        expected = np.where(out.action >= 0, row_prob[np.maximum(out.action, 0)], nothing_prob)
        assert np.allclose(out.propensity, expected)
    freq = counts / draws
    assert np.allclose(freq[[0, 1]], row_prob[[0, 1]], atol=0.025)
    assert freq[6] == pytest.approx(nothing_prob[0], abs=0.02)


def test_exploration_is_reproducible_and_respects_reserve():
    cands, cfg = make_instance(2000, 5, seed=1)
    result = allocate(cands, cfg)
    greedy = result.chosen[:, 0]
    ok = cands.eligible & cands.consent[cands.user_index, cands.channel] & (cands.remaining_cap > 0)[cands.user_index]
    args = (cands.user_index, ok, cands.cost, cands.channel, greedy, cands.n_users, date(2024, 5, 2))
    first = explore(*args, epsilon=0.2, seed=3, budget_reserve=5.0, channel_headroom={SMS: 0})
    again = explore(*args, epsilon=0.2, seed=3, budget_reserve=5.0, channel_headroom={SMS: 0})
    assert np.array_equal(first.action, again.action)
    assert first.exploration_spend <= 5.0 + 1e-9 and first.budget_clipped.any()
    sent = first.action[first.action >= 0]
    assert np.count_nonzero(cands.channel[sent] == SMS) <= result.channel_counts[SMS]
    assert ok[sent].all()
    reserve = exploration_reserve(cands.user_index, ok, cands.cost, cands.n_users, 0.2)
    roomy = explore(*args, epsilon=0.2, seed=3, budget_reserve=reserve)
    assert not roomy.budget_clipped.any()


def test_exploration_reserve_given_the_plan_is_the_exact_distribution_of_its_spend():
    cands, cfg = make_instance(400, 5, seed=2)
    greedy = allocate(cands, cfg).chosen[:, 0]
    ok = cands.eligible & cands.consent[cands.user_index, cands.channel] & (cands.remaining_cap > 0)[cands.user_index]
    args = (cands.user_index, ok, cands.cost, cands.channel, greedy, cands.n_users, date(2024, 5, 2))
    spend = np.array([explore(*args, epsilon=0.2, seed=s).exploration_spend for s in range(3000)])
    reserve = functools.partial(exploration_reserve, cands.user_index, ok, cands.cost, cands.n_users, 0.2)
    mean, one_sd = reserve(sigmas=0.0, greedy=greedy), reserve(sigmas=1.0, greedy=greedy) - reserve(sigmas=0.0, greedy=greedy)
    assert spend.mean() == pytest.approx(mean, abs=4 * one_sd / np.sqrt(len(spend)))
    assert spend.std() == pytest.approx(one_sd, rel=0.06)
    # Without the plan each explored user is costed as if the plan sent them nothing: a looser bound.
    assert reserve() > reserve(greedy=greedy) and reserve(sigmas=0.0) > mean
    assert (spend <= reserve(greedy=greedy)).all()


def test_pacing_spreads_and_carries_forward():
    start, end = date(2024, 6, 3), date(2024, 6, 12)  # 10 days, Monday start
    assert pace_budget(1000, start, end, start, 0) == pytest.approx(100)
    assert pace_budget(1000, start, end, date(2024, 6, 8), 300) == pytest.approx(700 / 5)  # under-spend carried
    weekend_heavy = [1, 1, 1, 1, 1, 2, 2]
    saturday = pace_budget(1000, start, end, date(2024, 6, 8), 500, weekend_heavy)
    assert saturday == pytest.approx(500 * 2 / (2 + 2 + 1 + 1 + 1))
    with pytest.raises(ValueError, match="outside the campaign"):
        pace_budget(1000, start, end, date(2024, 7, 1), 0)
