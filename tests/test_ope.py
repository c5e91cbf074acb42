"""Off-policy estimators on synthetic logs whose true target-policy value is known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from ml.delivery.ope import compare_policies, estimate_policy_value

N_GROUPS, N_ACTIONS = 6, 4
RNG_TABLES = np.random.default_rng(123)
TRUE_REWARD = RNG_TABLES.uniform(0.02, 0.3, size=(N_GROUPS, N_ACTIONS))  # P(reward | group, action)
LOGGING = RNG_TABLES.dirichlet(np.full(N_ACTIONS, 2.0), size=N_GROUPS)  # logging policy per group


def _greedy_policy(scores: np.ndarray, epsilon: float) -> np.ndarray:
    """ε-soft policy taking the argmax of `scores` per group."""
    policy = np.full((N_GROUPS, N_ACTIONS), epsilon / N_ACTIONS)
    policy[np.arange(N_GROUPS), scores.argmax(axis=1)] += 1 - epsilon
    return policy


GOOD = _greedy_policy(TRUE_REWARD, 0.2)
BAD = _greedy_policy(-TRUE_REWARD, 0.2)


def _true_value(policy: np.ndarray) -> float:
    return float((policy * TRUE_REWARD).sum(axis=1).mean())  # groups are equally likely


def _logs(seed: int, n: int):
    """Logged rows and, for DR, a deliberately imperfect reward model."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, N_GROUPS, n)
    cum = LOGGING.cumsum(axis=1)[group]
    action = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), N_ACTIONS - 1)
    reward = (rng.random(n) < TRUE_REWARD[group, action]).astype(float)
    q_model = np.clip(TRUE_REWARD + 0.04 * np.random.default_rng(7).normal(size=TRUE_REWARD.shape), 0, 1)
    return group, action, reward, LOGGING[group, action], q_model


def _estimate(log_seed: int, estimator: str, policy: np.ndarray, n: int = 2000, **kwargs):
    group, action, reward, propensity, q_model = _logs(log_seed, n)
    return estimate_policy_value(
        reward, propensity, policy[group, action], estimator=estimator,
        q_hat_logged=q_model[group, action], q_hat_target=(policy * q_model)[group].sum(axis=1), **kwargs,
    )


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_normal_intervals_cover_the_true_value(estimator):
    truth = _true_value(GOOD)
    estimates = [_estimate(seed, estimator, GOOD) for seed in range(300)]
    covered = np.mean([e.ci_low <= truth <= e.ci_high for e in estimates])
    assert 0.9 <= covered <= 0.99, covered
    assert abs(np.mean([e.value for e in estimates]) - truth) < 0.004  # unbiased (SNIPS: nearly)


def test_dr_is_tighter_than_ips_with_a_decent_reward_model():
    ips = np.mean([_estimate(s, "ips", GOOD).std_error for s in range(20)])
    dr = np.mean([_estimate(s, "dr", GOOD).std_error for s in range(20)])
    assert dr < ips


def test_bootstrap_intervals_cover_the_true_value():
    truth = _true_value(GOOD)
    hits = [_estimate(s, "snips", GOOD, n=1500, interval="bootstrap", n_bootstrap=200, seed=s) for s in range(30)]
    assert sum(e.ci_low <= truth <= e.ci_high for e in hits) >= 25
    normal = _estimate(0, "snips", GOOD, n=1500)
    assert (hits[0].ci_high - hits[0].ci_low) == pytest.approx(normal.ci_high - normal.ci_low, rel=0.3)


def test_clipping_bounds_the_weights():
    clipped = _estimate(0, "ips", GOOD, max_weight=1.5)
    unclipped = _estimate(0, "ips", GOOD)
    assert clipped.max_weight == 1.5 and clipped.value < unclipped.value
    assert clipped.effective_sample_size >= unclipped.effective_sample_size


@pytest.mark.parametrize("estimator", ["ips", "snips", "dr"])
def test_worse_challenger_is_not_judged_better(estimator):
    truth = _true_value(BAD) - _true_value(GOOD)
    for seed in range(10):
        group, action, reward, propensity, q_model = _logs(seed, 3000)
        comparison = compare_policies(
            reward, propensity, BAD[group, action], GOOD[group, action], estimator=estimator,
            q_hat_logged=q_model[group, action],
            challenger_q_hat_target=(BAD * q_model)[group].sum(axis=1),
            champion_q_hat_target=(GOOD * q_model)[group].sum(axis=1),
        )
        assert not comparison.challenger_is_better
        assert comparison.ci_high < 0  # the gap is large: the paired interval sees it
        assert comparison.difference == pytest.approx(comparison.challenger.value - comparison.champion.value)
    # and the other way round, the better policy is recognized
    reverse = compare_policies(reward, propensity, GOOD[group, action], BAD[group, action], estimator="ips")
    assert reverse.challenger_is_better and reverse.ci_low <= -truth <= reverse.ci_high


def test_paired_interval_is_narrower_than_unpaired():
    group, action, reward, propensity, _ = _logs(1, 3000)
    almost_good = _greedy_policy(TRUE_REWARD, 0.25)
    comparison = compare_policies(reward, propensity, almost_good[group, action], GOOD[group, action], estimator="ips")
    unpaired_se = np.hypot(comparison.challenger.std_error, comparison.champion.std_error)
    z = 1.959964
    assert (comparison.ci_high - comparison.ci_low) < 2 * z * unpaired_se
    bootstrap = compare_policies(reward, propensity, almost_good[group, action], GOOD[group, action],
                                 estimator="ips", interval="bootstrap", n_bootstrap=200)
    assert bootstrap.ci_low < comparison.difference < bootstrap.ci_high


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="propensity must be in \\(0, 1\\], row 1"):
        estimate_policy_value(np.array([1.0, 0.0]), np.array([0.5, 0.0]), np.array([1.0, 1.0]), estimator="ips")
    with pytest.raises(ValueError, match="DR needs"):
        estimate_policy_value(np.array([1.0]), np.array([0.5]), np.array([1.0]), estimator="dr")
    with pytest.raises(ValueError, match="target_prob has 1 rows, rewards has 2"):
        estimate_policy_value(np.array([1.0, 0.0]), np.array([0.5, 0.5]), np.array([1.0]), estimator="ips")
