"""The losses (engine.losses, engine.loss_functions) against hand formulas, torch and slow loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.catalog import LOSSES


def test_cross_entropy_matches_hand_formula_with_label_smoothing():
    torch.manual_seed(0)
    logits = torch.randn(6, 5, dtype=torch.float64)
    target = torch.tensor([0, 1, 2, 3, 4, 0])
    eps = 0.1
    loss = LOSSES.build("cross_entropy", 5, [1] * 5, label_smoothing=eps)(logits, target)
    logp = logits - logits.exp().sum(1, keepdim=True).log()
    q = torch.full_like(logp, eps / 5)
    q[torch.arange(6), target] += 1 - eps
    expected = -(q * logp).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    plain = LOSSES.build("cross_entropy", 5, [1] * 5)(logits, target)
    assert plain.item() == pytest.approx(-logp[torch.arange(6), target].mean().item(), rel=1e-12)


def _logits_and_targets(b=7, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, dtype=torch.float64, generator=g) * 2
    hard = torch.randint(0, c, (b,), generator=g)
    mix = torch.rand(b, 1, dtype=torch.float64, generator=g)
    perm = torch.randperm(b, generator=g)
    soft = mix * F.one_hot(hard, c) + (1 - mix) * F.one_hot(hard[perm], c)  # MixUp-like
    return logits, hard, soft.to(torch.float64)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cross_entropy_soft_targets_match_torch_probability_targets(eps):
    logits, hard, soft = _logits_and_targets()
    loss_fn = LOSSES.build("cross_entropy", 5, [1] * 5, label_smoothing=eps)
    torch_soft = F.cross_entropy(logits, soft, label_smoothing=eps)
    assert loss_fn(logits, soft).item() == pytest.approx(torch_soft.item(), rel=1e-12)
    # one-hot soft targets are the hard targets
    one_hot = F.one_hot(hard, 5).to(torch.float64)
    assert loss_fn(logits, one_hot).item() == pytest.approx(loss_fn(logits, hard).item(), rel=1e-12)
    # and the gradient agrees with torch's too
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    loss_fn(a, soft).backward()
    F.cross_entropy(b, soft, label_smoothing=eps).backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-14)


def test_losses_reject_malformed_targets():
    logits, hard, soft = _logits_and_targets()
    for name in LOSSES.names():
        loss_fn = LOSSES.build(name, 5, [3] * 5)
        with pytest.raises(ValueError):
            loss_fn(logits, soft[:, :4])
        with pytest.raises(ValueError):
            loss_fn(logits, hard[:, None])


def _focal_by_loop(logits, q, gamma):
    total = 0.0
    for row, qrow in zip(logits.tolist(), q.tolist(), strict=True):
        z = sum(math.exp(v) for v in row)
        for v, qc in zip(row, qrow, strict=True):
            p = math.exp(v) / z
            total += -qc * (1 - p) ** gamma * math.log(p)
    return total / len(logits)


def _smoothed(q, eps, c):
    return q * (1 - eps) + eps / c


@pytest.mark.parametrize("gamma", [0.5, 2.0, 3.0])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_focal_matches_a_slow_per_sample_loop(gamma, eps):
    logits, hard, soft = _logits_and_targets()
    loss_fn = LOSSES.build("focal", 5, [1] * 5, gamma=gamma, label_smoothing=eps)
    one_hot = F.one_hot(hard, 5).to(torch.float64)
    for target, q in ((hard, one_hot), (soft, soft)):
        expected = _focal_by_loop(logits, _smoothed(q, eps, 5), gamma)
        assert loss_fn(logits, target).item() == pytest.approx(expected, rel=1e-12)


def test_focal_hand_case_and_gamma_zero_is_cross_entropy():
    # two classes, equal logits: p = 1/2, FL = -(1/2)^2 * log(1/2) = ln(2) / 4
    loss = LOSSES.build("focal", 2, [1, 1])(torch.zeros(1, 2), torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(2) / 4, rel=1e-6)
    logits, hard, soft = _logits_and_targets()
    for eps in (0.0, 0.2):
        focal = LOSSES.build("focal", 5, [1] * 5, gamma=0.0, label_smoothing=eps)
        for target in (hard, soft):
            ce = F.cross_entropy(logits, target, label_smoothing=eps)
            assert focal(logits, target).item() == pytest.approx(ce.item(), rel=1e-12)


def test_focal_per_class_alpha_weights_each_class_term():
    logits, hard, soft = _logits_and_targets()
    alpha = [0.25, 1.0, 2.0, 0.0, 0.5]
    loss_fn = LOSSES.build("focal", 5, [1] * 5, gamma=2.0, alpha=alpha)
    one_hot = F.one_hot(hard, 5).to(torch.float64)
    for target, q in ((hard, one_hot), (soft, soft)):
        weighted = q * torch.tensor(alpha, dtype=torch.float64)
        expected = _focal_by_loop(logits, weighted, 2.0)
        assert loss_fn(logits, target).item() == pytest.approx(expected, rel=1e-12)
    ones = LOSSES.build("focal", 5, [1] * 5, gamma=2.0, alpha=[1.0] * 5)
    plain = LOSSES.build("focal", 5, [1] * 5, gamma=2.0)
    assert ones(logits, hard).item() == pytest.approx(plain(logits, hard).item(), rel=1e-12)
    with pytest.raises(ValueError, match="one weight per class"):
        LOSSES.build("focal", 5, [1] * 5, alpha=[1.0] * 4)


def test_focal_gradient_stays_finite_when_a_class_is_certain():
    logits = torch.tensor([[200.0, 0.0, -5.0]], requires_grad=True)  # p_0 == 1 in float32
    for gamma in (0.5, 2.0):
        logits.grad = None
        LOSSES.build("focal", 3, [1] * 3, gamma=gamma)(logits, torch.tensor([0])).backward()
        assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_class_balanced_weights_match_the_formula_by_hand():
    # beta 0.9, counts (100, 10, 1). Effective numbers E_n = (1 - 0.9^n) / 0.1:
    #   0.9^10 = 0.3486784401          -> E_10  = 6.513215599
    #   0.9^100 = 2.65613988876e-5     -> E_100 = 9.99973438601
    #   E_1 = 1
    # w ~ 1/E = (0.100002656210, 0.153533993279, 1), sum 1.253536649489, scaled to sum 3:
    expected = [0.239329236009, 0.367441973096, 2.393228790895]
    loss_fn = LOSSES.build("class_balanced", 3, [100, 10, 1], beta=0.9)
    weights = loss_fn.class_weights.tolist()
    assert weights == pytest.approx(expected, rel=1e-10)
    assert sum(weights) == pytest.approx(3.0)
    # the loss: mean over the batch of w_y * CE_i (Cui et al.'s plain mean, not torch's
    # weight-normalised one)
    logits, _, _ = _logits_and_targets(b=6, c=3)
    target = torch.tensor([0, 1, 2, 2, 1, 0])
    ce = F.cross_entropy(logits, target, reduction="none")
    manual = sum(expected[t] * ce[i].item() for i, t in enumerate(target.tolist())) / 6
    assert loss_fn(logits, target).item() == pytest.approx(manual, rel=1e-9)
    # soft targets: sum_c w_c q_c (-log p_c)
    soft = torch.tensor([[0.5, 0.5, 0.0]] * 3 + [[0.0, 0.25, 0.75]] * 3, dtype=torch.float64)
    logp = F.log_softmax(logits, 1)
    manual_soft = -(soft * torch.tensor(expected, dtype=torch.float64) * logp).sum(1).mean()
    assert loss_fn(logits, soft).item() == pytest.approx(manual_soft.item(), rel=1e-9)


def test_class_balanced_limits_and_bases():
    logits, hard, soft = _logits_and_targets()
    # equal counts -> all weights 1 -> plain CE, for any beta
    for beta in (0.0, 0.9, 0.9999, 1.0):
        loss_fn = LOSSES.build("class_balanced", 5, [50] * 5, beta=beta)
        for target in (hard, soft):
            ce = F.cross_entropy(logits, target)
            assert loss_fn(logits, target).item() == pytest.approx(ce.item(), rel=1e-12)
    counts = [400, 100, 50, 20, 10]
    # beta 0: no re-weighting; beta 1: inverse frequency
    assert LOSSES.build("class_balanced", 5, counts, beta=0.0).class_weights.tolist() == [1.0] * 5
    inv = [1 / n for n in counts]
    inv = [5 * v / sum(inv) for v in inv]
    assert LOSSES.build("class_balanced", 5, counts, beta=1.0).class_weights.tolist() == (
        pytest.approx(inv, rel=1e-12)
    )
    # focal base: w_y * focal term, against the slow loop
    cb = LOSSES.build("class_balanced", 5, counts, beta=0.99, base="focal", gamma=1.5)
    w = cb.class_weights
    q = F.one_hot(hard, 5).to(torch.float64) * w
    assert cb(logits, hard).item() == pytest.approx(_focal_by_loop(logits, q, 1.5), rel=1e-12)
    with pytest.raises(ValueError, match="gamma only applies"):
        LOSSES.build("class_balanced", 5, counts, gamma=1.0)
    with pytest.raises(ValueError, match="class 2 has none"):
        LOSSES.build("class_balanced", 5, [5, 5, 0, 5, 5])
    with pytest.raises(ValueError, match="5 classes"):
        LOSSES.build("class_balanced", 5, [5, 5])


def test_ohem_keeps_the_hardest_fraction_sorted_by_hand():
    logits, hard, soft = _logits_and_targets(b=10)
    for target, q in ((hard, F.one_hot(hard, 5).to(torch.float64)), (soft, soft)):
        per_sample = []
        for row, qrow in zip(logits.tolist(), q.tolist(), strict=True):
            lse = math.log(sum(math.exp(v) for v in row))
            per_sample.append(-sum(qc * (v - lse) for v, qc in zip(row, qrow, strict=True)))
        ranked = sorted(per_sample, reverse=True)
        for ratio, kept in ((0.7, 7), (0.25, 3), (0.01, 1), (1.0, 10)):
            loss = LOSSES.build("ohem", 5, [1] * 5, keep_ratio=ratio)(logits, target)
            assert loss.item() == pytest.approx(sum(ranked[:kept]) / kept, rel=1e-12), ratio
    # only the kept samples get a gradient
    x = logits.clone().requires_grad_()
    LOSSES.build("ohem", 5, [1] * 5, keep_ratio=0.3)(x, hard).backward()
    assert x.grad is not None
    assert int((x.grad.abs().sum(1) > 0).sum()) == 3
