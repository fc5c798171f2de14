"""Every numeric component against an independent reference (formula, hand case, sklearn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from engine import metrics
from engine.augment import build_pipeline
from engine.catalog import AUGMENTATIONS, LOSSES, OPTIMIZERS, SCHEDULES
from engine.optim import param_groups

# --------------------------------------------------------------------------- schedule


def test_cosine_with_warmup_matches_the_formula():
    steps_per_epoch, epochs, warmup_epochs = 10, 20, 5
    total = steps_per_epoch * epochs
    f = SCHEDULES.build("cosine", total, steps_per_epoch, warmup_epochs=warmup_epochs)
    w = warmup_epochs * steps_per_epoch
    for step in range(total):
        if step < w:
            expected = (step + 1) / w
        else:
            expected = 0.5 * (1 + math.cos(math.pi * (step - w) / (total - w)))
        assert f(step) == pytest.approx(expected, abs=1e-12)
    assert f(w - 1) == 1.0 and f(w) == 1.0  # warmup reaches the base rate exactly
    assert f(total) == pytest.approx(0.0)


def test_cosine_floor_and_constant():
    f = SCHEDULES.build("cosine", 100, 10, warmup_epochs=0, min_lr_ratio=0.1)
    assert (
        f(0) == pytest.approx(1.0) and f(100) == pytest.approx(0.1) and f(50) == pytest.approx(0.55)
    )
    g = SCHEDULES.build("constant", 100, 10, warmup_epochs=1)
    assert [g(s) for s in (0, 4, 9, 10, 99)] == [0.1, 0.5, 1.0, 1.0, 1.0]


def test_schedule_drives_the_optimizer_per_iteration():
    model = nn.Linear(2, 2)
    opt = OPTIMIZERS.build("sgd", model, lr=0.1)
    f = SCHEDULES.build("cosine", 20, 2, warmup_epochs=1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * f(s) for s in range(20)])


# --------------------------------------------------------------------------- loss


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


# --------------------------------------------------------------------------- optimizer


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2, 3)


def test_weight_decay_only_on_kernels():
    model = _Tiny()
    decay, no_decay = param_groups(model, 5e-4)
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model.conv.bias),
        id(model.bn.weight),
        id(model.bn.bias),
        id(model.fc.bias),
    }
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0


def test_sgd_step_matches_hand_computed_update():
    """Two steps of heavy-ball momentum with decoupled-from-bias weight decay, by hand."""
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(0.5)
    lr, mu, wd = 0.1, 0.9, 0.01
    opt = OPTIMIZERS.build("sgd", model, lr=lr, momentum=mu, weight_decay=wd)
    x = torch.tensor([[1.0, 1.0]])
    w, b = np.array([1.0, -2.0]), 0.5
    vw, vb = np.zeros(2), 0.0
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        gw = np.array([1.0, 1.0]) + wd * w  # d(out)/dw = x, plus L2 on the kernel
        gb = 1.0  # no decay on the bias
        vw, vb = mu * vw + gw, mu * vb + gb
        w, b = w - lr * vw, b - lr * vb
        opt.step()
    assert model.weight.detach().numpy().ravel() == pytest.approx(w, rel=1e-6)
    assert model.bias.item() == pytest.approx(b, rel=1e-6)


def test_nesterov_matches_hand_computed_update():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = OPTIMIZERS.build("sgd", model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    w, v = 1.0, 0.0
    for _ in range(3):
        opt.zero_grad()
        (model.weight**2).sum().backward()
        g = 2 * w
        v = 0.9 * v + g
        w = w - 0.1 * (g + 0.9 * v)
        opt.step()
    assert model.weight.item() == pytest.approx(w, rel=1e-6)


# --------------------------------------------------------------------------- metrics


def test_topk_matches_a_hand_case():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 0])
    assert metrics.topk_correct(logits, target, (1, 2, 3)).tolist() == [1, 2, 3]


def test_confusion_matrix_rows_are_true_classes_like_sklearn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    rng = np.random.default_rng(0)
    true = rng.integers(0, 7, 500)
    pred = np.where(rng.random(500) < 0.6, true, rng.integers(0, 7, 500))
    ours = metrics.confusion_matrix(torch.from_numpy(pred), torch.from_numpy(true), 7).numpy()
    np.testing.assert_array_equal(ours, sk_confusion(true, pred, labels=range(7)))
    # one hand case: true 0 predicted 1 lands in row 0, column 1
    one = metrics.confusion_matrix(torch.tensor([1]), torch.tensor([0]), 3)
    assert one[0, 1] == 1 and one.sum() == 1


def test_per_class_ap_auc_match_sklearn_and_curves_are_sane():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    n, c = 600, 4
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = metrics.per_class_curves(probs, labels)
    for k in range(c):
        y = (labels == k).astype(int)
        assert out["ap"][k] == pytest.approx(average_precision_score(y, probs[:, k]))
        assert out["auc"][k] == pytest.approx(roc_auc_score(y, probs[:, k]))
    assert out["macro_auc"] == pytest.approx(out["auc"].mean())
    assert out["roc_tpr"].shape == (c, metrics.CURVE_POINTS)
    assert np.all(np.diff(out["roc_tpr"], axis=1) >= -1e-12)  # ROC is non-decreasing
    assert np.all(np.diff(out["pr_precision"], axis=1) <= 1e-12)  # interpolated PR non-increasing
    assert out["roc_tpr"][:, -1] == pytest.approx(1.0)


def test_absent_class_gets_nan_not_a_crash():
    probs = np.full((4, 3), 1 / 3)
    out = metrics.per_class_curves(probs, np.array([0, 1, 0, 1]))
    assert math.isnan(out["ap"][2]) and not math.isnan(out["macro_ap"])


# --------------------------------------------------------------------------- augmentation


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    torch.manual_seed(0)
    img = torch.randint(1, 256, (3, 32, 32), dtype=torch.uint8)  # no zeros inside the image
    crop = AUGMENTATIONS.build_reference("random_crop", padding=4)
    padded = torch.zeros(3, 40, 40, dtype=torch.uint8)
    padded[:, 4:36, 4:36] = img
    windows = {(i, j): padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)}
    offsets = set()
    for _ in range(200):
        out = crop(img)
        match = [k for k, w in windows.items() if torch.equal(w, out)]
        assert len(match) == 1
        offsets.add(match[0])
    assert len(offsets) > 40  # all 81 offsets are possible; 200 draws reach many


def test_hflip_flips_half_the_time_and_exactly():
    torch.manual_seed(0)
    img = torch.arange(3 * 32 * 32, dtype=torch.int64).reshape(3, 32, 32).to(torch.uint8)
    flip = AUGMENTATIONS.build_reference("hflip")
    flipped = sum(torch.equal(flip(img), img.flip(-1)) for _ in range(400))
    assert 150 < flipped < 250
    assert torch.equal(AUGMENTATIONS.build_reference("hflip", p=1.0)(img), img.flip(-1))


def test_empty_pipeline_is_the_identity():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    assert torch.equal(build_pipeline([])(img), img)


def test_rotation_by_zero_degrees_is_identity_and_keeps_dtype():
    img = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    out = AUGMENTATIONS.build_reference("rotation", degrees=0.0)(img)
    assert out.dtype == torch.uint8 and torch.equal(out, img)
    pipeline = build_pipeline(
        [("random_crop", {"padding": 4}), ("hflip", {}), ("rotation", {"degrees": 15})]
    )
    assert pipeline(img).shape == (3, 32, 32)


def test_ema_follows_the_update_formula(tmp_path):
    from engine.config import load_config
    from engine.events import EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart", ["model.name=wrn", "model.depth=10", "model.width=1", "train.ema_decay=0.75"]
    )
    trainer = Trainer(cfg, tmp_path, "ema", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    assert trainer.ema is not None
    before = [p.detach().clone() for p in trainer.ema.parameters()]
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(1.0)
    trainer._update_ema()
    for old, live, kept in zip(
        before, trainer.model.parameters(), trainer.ema.parameters(), strict=True
    ):
        assert torch.allclose(kept, 0.75 * old + 0.25 * live.detach())


def test_mix_feeds_soft_targets_to_the_loss(tmp_path):
    from engine.config import load_config
    from engine.events import EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart",
        ["model.name=wrn", "model.depth=10", "model.width=1", "mix.name=cutmix", "data.subset=320"],
    )
    trainer = Trainer(cfg, tmp_path, "mix", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    trainer._setup()
    seen = []
    loss_fn = trainer.loss_fn

    def spy(logits, target):
        seen.append(target)
        return loss_fn(logits, target)

    trainer.loss_fn = spy
    images, labels = next(iter(trainer.loader))
    zero = torch.zeros((), dtype=torch.float64)
    trainer._step(images, labels, zero.clone(), torch.zeros((), dtype=torch.long))
    (target,) = seen
    assert target.shape == (len(labels), 100) and target.dtype.is_floating_point
    assert torch.allclose(target.sum(1), torch.ones(len(labels)))
    assert (target.max(1).values < 1).any()  # some rows really mixed two labels


def test_step_and_multistep_follow_their_closed_forms():
    f = SCHEDULES.build("step", 100, 10, warmup_epochs=1, step_epochs=3, gamma=0.5)
    assert [f(i) for i in (0, 9, 10, 29, 30, 60, 99)] == pytest.approx(
        [0.1, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    )
    g = SCHEDULES.build("multistep", 200, 10, milestones=[6, 12, 16], gamma=0.2)
    assert [g(i) for i in (0, 59, 60, 119, 120, 160, 199)] == pytest.approx(
        [1.0, 1.0, 0.2, 0.2, 0.04, 0.008, 0.008]
    )


def test_onecycle_matches_torch_onecycle_lr():
    model = nn.Linear(2, 2)
    total, max_lr = 97, 0.4
    reference = torch.optim.SGD(model.parameters(), lr=max_lr)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(
        reference, max_lr=max_lr, total_steps=total, pct_start=0.3, cycle_momentum=False
    )
    f = SCHEDULES.build("onecycle", total, 10)
    for i in range(total):
        assert max_lr * f(i) == pytest.approx(reference.param_groups[0]["lr"], rel=1e-9), i
        reference.step()
        torch_sched.step()


def test_vit_uses_64_patch_tokens_and_has_the_formula_parameter_count():
    from engine.catalog import MODELS

    def formula(dim: int, depth: int, p: int = 4, classes: int = 100, mlp: float = 4.0) -> int:
        n, hidden = (32 // p) ** 2, int(dim * mlp)
        embed = 3 * p * p * dim + dim + dim + (n + 1) * dim  # patch conv, cls, positions
        block = 2 * dim + (3 * dim * dim + 3 * dim) + (dim * dim + dim) + 2 * dim
        block += dim * hidden + hidden + hidden * dim + dim
        return embed + depth * block + 2 * dim + dim * classes + classes

    small = MODELS.build("vit_small", 100)
    assert sum(q.numel() for q in small.parameters()) == formula(384, 6)
    assert sum(
        q.numel() for q in MODELS.build("vit", 100, dim=96, depth=2, heads=4).parameters()
    ) == formula(96, 2)
    tokens = small.tokens(torch.zeros(2, 3, 32, 32))
    assert tokens.shape == (2, 64, 384)
    tiny = MODELS.build("vit", 100, dim=64, depth=1, heads=4, patch_size=8)
    assert tiny.tokens(torch.zeros(1, 3, 32, 32)).shape == (1, 16, 64)
    assert tiny(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_normalizer_is_the_formula_in_the_steps_layout_and_dtype(dtype, channels_last):
    """(x / 255 - mean) / std per channel, written in one kernel straight into the step's memory
    format and dtype (bf16 under autocast: what a cast of the fp32 result would give)."""
    from engine.device import Normalizer

    mean, std = (0.507, 0.487, 0.441), (0.267, 0.256, 0.276)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = Normalizer(mean, std, torch.device("cpu"), channels_last, dtype)(images)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    expected = (images.double() / 255 - m.double()) / s.double()
    assert out.dtype == dtype and out.shape == images.shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=fmt)
    tolerance = 1e-5 if dtype == torch.float32 else 2**-7 * expected.abs().max().item()
    assert (out.double() - expected).abs().max().item() <= tolerance
