"""cvlib.box_transforms against torchvision.transforms.v2 (same parameters -> same boxes and
pixels), and invariants where v2 has no twin."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from torch.testing import assert_close
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from cvlib import box_transforms as bt
from cvlib.box_transforms import Sample
from helpers import REPO


def random_sample(gen: torch.Generator, h: int = 37, w: int = 53, n: int = 12) -> Sample:
    image = torch.rand(3, h, w, generator=gen)
    xy = torch.rand(n, 2, generator=gen) * torch.tensor([w, h])
    wh = torch.rand(n, 2, generator=gen) * torch.tensor([w, h]) * 0.5 + 0.5
    boxes = torch.cat([xy, xy + wh], 1)
    boxes = torch.stack([boxes[:, 0].clamp(max=w - 1), boxes[:, 1].clamp(max=h - 1),
                         boxes[:, 2].clamp(max=w), boxes[:, 3].clamp(max=h)], 1)
    return Sample(image, boxes, torch.arange(n) * 10)


def v2_boxes(sample: Sample) -> tv_tensors.BoundingBoxes:
    return tv_tensors.BoundingBoxes(sample.boxes, format="XYXY", canvas_size=tuple(sample.image.shape[-2:]))


def centre_mask(boxes, top, left, height, width):
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    return (c[:, 0] > left) & (c[:, 0] < left + width) & (c[:, 1] > top) & (c[:, 1] < top + height)


def assert_valid(sample: Sample) -> None:
    h, w = sample.image.shape[-2:]
    b = sample.boxes
    assert len(b) == len(sample.labels)
    eps = 1e-4 * max(h, w)  # resizing scales by w'/w in float32: 48 can come out as 48.000004
    assert (b[:, :2] >= -eps).all() and (b[:, 2] <= w + eps).all() and (b[:, 3] <= h + eps).all()
    assert (b[:, 2] >= b[:, 0]).all() and (b[:, 3] >= b[:, 1]).all()


@pytest.fixture
def sample():
    return random_sample(torch.Generator().manual_seed(0))


def test_horizontal_flip_matches_v2(sample):
    out = bt.horizontal_flip(sample)
    assert_close(out.image, F.horizontal_flip(sample.image))
    assert_close(out.boxes, F.horizontal_flip(v2_boxes(sample)).as_subclass(torch.Tensor))
    assert (out.boxes[:, 2] > out.boxes[:, 0]).all()  # x1 < x2 after the swap
    assert_close(bt.horizontal_flip(out).boxes, sample.boxes)  # an involution


@pytest.mark.parametrize("window", [(5, 7, 20, 30), (0, 0, 37, 53), (-4, -6, 45, 70), (30, 40, 15, 20)])
def test_crop_matches_v2_on_kept_boxes(sample, window):
    top, left, height, width = window
    out = bt.crop(sample, top, left, height, width)
    assert_close(out.image, F.crop(sample.image, top, left, height, width))
    keep = centre_mask(sample.boxes, *window)
    ref = F.crop(v2_boxes(sample), top, left, height, width).as_subclass(torch.Tensor)[keep]
    assert_close(out.boxes, ref)
    assert torch.equal(out.labels, sample.labels[keep])
    assert_valid(out)


def test_crop_drops_box_whose_centre_leaves():
    s = Sample(torch.zeros(3, 10, 10), torch.tensor([[0.0, 0, 4, 4], [3, 3, 9, 9]]), torch.tensor([1, 2]))
    out = bt.crop(s, 0, 3, 10, 7)  # first centre x=2 is left of the window, second x=6 inside
    assert out.labels.tolist() == [2] and out.boxes.tolist() == [[0.0, 3.0, 6.0, 9.0]]


def test_pad_matches_v2(sample):
    fill = torch.tensor([0.1, 0.2, 0.3])
    out = bt.pad(sample, 3, 4, 5, 6, fill)
    assert_close(out.image, F.pad(sample.image, [3, 4, 5, 6], fill=fill.tolist()))
    assert_close(out.boxes, F.pad(v2_boxes(sample), [3, 4, 5, 6]).as_subclass(torch.Tensor))


@pytest.mark.parametrize("size", [(20, 30), (80, 41), (37, 53)])
def test_resize_matches_v2(sample, size):
    out = bt.resize(sample, size)
    assert_close(out.image, F.resize(sample.image, list(size), antialias=True))
    assert_close(out.boxes, F.resize(v2_boxes(sample), list(size)).as_subclass(torch.Tensor))


def test_letterbox_is_resize_then_pad(sample):
    out = bt.letterbox(sample, 64, fill=0.5)
    assert out.image.shape == (3, 64, 64)
    nh, nw = round(37 * 64 / 53), 64
    top = (64 - nh) // 2
    ref = F.pad(F.resize(sample.image, [nh, nw], antialias=True), [0, top, 0, 64 - nh - top], fill=0.5)
    assert_close(out.image, ref)
    ref_boxes = F.pad(F.resize(v2_boxes(sample), [nh, nw]), [0, top, 0, 64 - nh - top])
    assert_close(out.boxes, ref_boxes.as_subclass(torch.Tensor))


def test_hsv_matches_v2_and_skimage():
    image = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(1))
    assert_close(bt.adjust_hsv(image), image, atol=1e-6, rtol=0)
    for hue in (0.1, -0.3, 0.5):
        assert_close(bt.adjust_hsv(image, hue=hue), F.adjust_hue(image, hue), atol=1e-5, rtol=0)
    assert_close(bt.adjust_hsv(image, value=0.6), F.adjust_brightness(image, 0.6), atol=1e-6, rtol=0)
    skcolor = pytest.importorskip("skimage.color")
    hsv = skcolor.rgb2hsv(image.permute(1, 2, 0).double().numpy())
    hsv[..., 1] = (hsv[..., 1] * 0.4).clip(0, 1)
    ref = torch.from_numpy(skcolor.hsv2rgb(hsv)).permute(2, 0, 1).float()
    assert_close(bt.adjust_hsv(image, saturation=0.4), ref, atol=1e-5, rtol=0)


def test_rotated_box_bounds_matches_v2():
    boxes = torch.tensor([[40.0, 30, 60, 50], [35, 40, 65, 45]])
    for angle in (0.0, 17.0, 45.0, 90.0, -30.0):
        ref = F.rotate(tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(100, 100)), angle,
                       center=[50.0, 40.0])
        assert_close(bt.rotated_box_bounds(boxes, angle, (50.0, 40.0)), ref.as_subclass(torch.Tensor),
                     atol=1e-4, rtol=0)
    square = bt.rotated_box_bounds(torch.tensor([[0.0, 0, 1, 1]]), 45.0, (0.5, 0.5))
    assert_close((square[0, 2] - square[0, 0]) ** 2, torch.tensor(2.0))  # area doubles at 45 degrees


def test_random_transforms_draw_params_once_and_reproduce():
    pipeline = bt.compose(bt.random_horizontal_flip, bt.random_ssd_crop, bt.random_zoom_out,
                          bt.random_yolo_jitter, bt.random_hsv, lambda s, g: bt.letterbox(s, 48))
    for seed in range(40):
        s = random_sample(torch.Generator().manual_seed(100 + seed))
        a = pipeline(s, torch.Generator().manual_seed(seed))
        b = pipeline(s, torch.Generator().manual_seed(seed))
        assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes)
        assert a.image.shape == (3, 48, 48)
        assert_valid(a)
        assert set(a.labels.tolist()) <= set(s.labels.tolist())


def test_random_flip_replays_with_v2():
    s = random_sample(torch.Generator().manual_seed(3))
    flips = 0
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        flip = torch.rand((), generator=torch.Generator().manual_seed(seed)).item() < 0.5
        out = bt.random_horizontal_flip(s, gen)
        ref = F.horizontal_flip(v2_boxes(s)) if flip else v2_boxes(s)
        assert_close(out.boxes, ref.as_subclass(torch.Tensor))
        flips += flip
    assert 0 < flips < 20


def test_ssd_crop_replays_v2_random_iou_crop():
    """Same seed -> v2's RandomIoUCrop draws the same window; kept boxes and pixels agree."""
    from torchvision.transforms import v2
    crops = 0
    for seed in range(30):
        s = random_sample(torch.Generator().manual_seed(500 + seed), n=5)
        params = bt.ssd_crop_params(s, torch.Generator().manual_seed(seed))
        ours = bt.random_ssd_crop(s, torch.Generator().manual_seed(seed))
        torch.manual_seed(seed)  # v2 draws from the global generator
        image, boxes = v2.RandomIoUCrop()(tv_tensors.Image(s.image), v2_boxes(s))
        assert_close(ours.image, image.as_subclass(torch.Tensor))
        if params is None:
            assert_close(ours.boxes, s.boxes)
            continue
        crops += 1
        keep = centre_mask(s.boxes, *params)
        assert_close(ours.boxes, boxes.as_subclass(torch.Tensor)[keep])
        assert torch.equal(ours.labels, s.labels[keep])
        assert_valid(ours)
    assert crops >= 15


def test_ssd_crop_meets_each_min_iou():
    from torchvision.ops import box_iou
    s = random_sample(torch.Generator().manual_seed(5), n=4)
    s = Sample(s.image, torch.cat([s.boxes, torch.tensor([[2.0, 3, 50, 35]])]), torch.arange(5))
    for min_iou in (0.1, 0.5, 0.9):
        for seed in range(10):
            top, left, h, w = bt.ssd_crop_params(s, torch.Generator().manual_seed(seed), min_ious=(min_iou,))
            inside = centre_mask(s.boxes, top, left, h, w)
            window = torch.tensor([[left, top, left + w, top + h]], dtype=torch.float32)
            assert inside.any() and box_iou(s.boxes[inside], window).max() >= min_iou
    with pytest.raises(RuntimeError, match="minimum IoU"):  # a 2x2 box never reaches IoU 0.9
        bt.ssd_crop_params(Sample(s.image, torch.tensor([[1.0, 1, 3, 3]]), torch.tensor([0])),
                           torch.Generator().manual_seed(0), min_ious=(0.9,), max_rounds=3)


def test_zoom_out_and_jitter_invariants():
    s = random_sample(torch.Generator().manual_seed(7))
    for seed in range(30):
        z = bt.random_zoom_out(s, torch.Generator().manual_seed(seed), p=1.0)
        assert z.image.shape[1] >= 37 and z.image.shape[2] >= 53 and len(z.boxes) == len(s.boxes)
        assert_close(z.boxes[:, 2:] - z.boxes[:, :2], s.boxes[:, 2:] - s.boxes[:, :2])
        assert_valid(z)
        j = bt.random_yolo_jitter(s, torch.Generator().manual_seed(seed))
        assert 0.6 * 37 - 1 <= j.image.shape[1] <= 1.4 * 37 + 1
        assert_valid(j)


def test_bad_input():
    s = random_sample(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="boxes"):
        bt.horizontal_flip(Sample(s.image, s.boxes[:, :3], s.labels))
    for bad in (Sample(s.image.tolist(), s.boxes, s.labels), Sample(s.image, s.boxes.tolist(), s.labels),
                Sample(s.image, s.boxes, s.labels.tolist())):  # wrong types: TypeError naming the field
        with pytest.raises(TypeError, match=("image", "boxes", "labels")[[type(v) is list for v in bad].index(True)]):
            bt.horizontal_flip(bad)
    with pytest.raises(TypeError, match="sample"):
        bt.horizontal_flip((s.image, s.boxes))
    with pytest.raises(TypeError, match="image"):  # uint8 images: v2 takes them, cvlib wants [0, 1] floats
        bt.horizontal_flip(Sample((s.image * 255).to(torch.uint8), s.boxes, s.labels))
    with pytest.raises(ValueError, match="labels"):
        bt.horizontal_flip(Sample(s.image, s.boxes, s.labels[:-1]))
    with pytest.raises(ValueError, match="image"):
        bt.horizontal_flip(Sample(s.image[0], s.boxes, s.labels))
    with pytest.raises(TypeError, match="top"):
        bt.crop(s, 1.0, 0, 5, 5)
    with pytest.raises(ValueError, match="positive"):
        bt.crop(s, 0, 0, 0, 5)
    with pytest.raises(TypeError, match="generator"):
        bt.random_horizontal_flip(s, 0)
    with pytest.raises(ValueError, match="fill"):
        bt.pad(s, 1, 1, 1, 1, torch.zeros(2))


def test_photos_load_with_boxes_inside():
    pytest.importorskip("skimage")
    photos = bt.load_photos()
    assert set(photos) == {"astronaut", "chelsea", "coffee", "rocket"}
    for s in photos.values():
        assert_valid(s)
        assert ((s.boxes[:, 2:] - s.boxes[:, :2]) > 10).all()
        assert s.image.dtype == s.boxes.dtype == torch.get_default_dtype()
    double = bt.load_photos(torch.float64)["coffee"]
    assert double.image.dtype == double.boxes.dtype == torch.float64
    assert torch.equal(double.image.float(), photos["coffee"].image.float())  # k / 255, rounded once
    with pytest.raises(TypeError, match="dtype"):
        bt.load_photos(torch.int64)


def test_benchmark_runs_tiny():
    path = REPO / "bench" / "box_transforms.py"
    spec = importlib.util.spec_from_file_location("bench_box_transforms", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    result = module.benchmark(num_images=2, repeats=1, size=32)
    assert set(result) == {"cvlib", "torchvision.v2", "ratio"} and result["ratio"] > 0


# --- upstream-style bounding-box cases (torchvision's test/test_transforms_v2.py: every kernel on
# every floating box dtype, empty and degenerate boxes; reference = v2's functional kernels)

BOX_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
KERNELS = {  # cvlib kernel, the same call in v2 (image and boxes)
    "horizontal_flip": (bt.horizontal_flip, lambda x: F.horizontal_flip(x)),
    "crop": (lambda s: bt.crop(s, 5, 7, 20, 30), lambda x: F.crop(x, 5, 7, 20, 30)),
    "crop_outside": (lambda s: bt.crop(s, -4, -6, 45, 70), lambda x: F.crop(x, -4, -6, 45, 70)),
    "pad": (lambda s: bt.pad(s, 3, 4, 5, 6), lambda x: F.pad(x, [3, 4, 5, 6])),
    "resize_down": (lambda s: bt.resize(s, (20, 30)), lambda x: F.resize(x, [20, 30], antialias=True)),
    "resize_up": (lambda s: bt.resize(s, (80, 41)), lambda x: F.resize(x, [80, 41], antialias=True)),
}


def _v2_boxes(boxes, canvas):
    return tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=canvas)


@pytest.mark.parametrize("name", KERNELS)
@pytest.mark.parametrize("dtype", BOX_DTYPES)
def test_kernels_match_v2_for_every_box_dtype(name, dtype):
    ours_fn, v2_fn = KERNELS[name]
    s = random_sample(torch.Generator().manual_seed(1))
    s = Sample(s.image.to(dtype), s.boxes.to(dtype), s.labels)
    out = ours_fn(s)
    assert out.image.dtype == out.boxes.dtype == dtype
    ref = v2_fn(_v2_boxes(s.boxes, tuple(s.image.shape[-2:]))).as_subclass(torch.Tensor)
    if name.startswith("crop"):  # cvlib drops the boxes whose centre left the window
        ref = ref[centre_mask(s.boxes, *((5, 7, 20, 30) if name == "crop" else (-4, -6, 45, 70)))]
    assert ref.dtype == dtype
    if name.startswith("resize") and dtype == torch.float64:  # v2's scale is float32 here
        assert_close(out.boxes, ref, atol=1e-5, rtol=1e-6)
    else:  # the same boxes, bit for bit (v2 scales half boxes in float32 too, then rounds once)
        assert torch.equal(out.boxes, ref), (out.boxes - ref).abs().max()
    tol = {"atol": 1e-2, "rtol": 1e-2} if dtype in (torch.float16, torch.bfloat16) else {}
    assert_close(out.image, v2_fn(s.image), **tol)


@pytest.mark.parametrize("name", KERNELS)
def test_kernels_on_zero_boxes(name):
    ours_fn, v2_fn = KERNELS[name]
    s = Sample(torch.rand(3, 37, 53, generator=torch.Generator().manual_seed(2)), torch.zeros(0, 4),
               torch.zeros(0, dtype=torch.long))
    out = ours_fn(s)
    ref = v2_fn(_v2_boxes(s.boxes, (37, 53)))
    assert out.boxes.shape == ref.shape == (0, 4) and out.labels.shape == (0,)
    assert_close(out.image, v2_fn(s.image))
    assert bt.letterbox(s, 48).boxes.shape == (0, 4)
    assert bt.rotated_box_bounds(s.boxes, 30.0, (10.0, 10.0)).shape == (0, 4)
    with pytest.raises(ValueError, match="at least one box"):  # no box: no IoU to aim for
        bt.ssd_crop_params(s, torch.Generator().manual_seed(0))


def test_degenerate_and_edge_boxes_as_v2():
    image = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(3))
    boxes = torch.tensor([[4.0, 5, 4, 9],      # zero width
                          [0.0, 0, 30, 20],    # the whole image
                          [29.0, 19, 30, 20],  # the last pixel
                          [12.0, 3, 8, 7]])    # x2 < x1: v2 transforms it like any other
    s = Sample(image, boxes, torch.arange(4))
    for fn, v2_fn in (KERNELS["horizontal_flip"], KERNELS["pad"], KERNELS["resize_up"]):
        assert torch.equal(fn(s).boxes, v2_fn(_v2_boxes(boxes, (20, 30))).as_subclass(torch.Tensor))
    flipped = bt.horizontal_flip(s).boxes
    assert flipped[1].tolist() == [0.0, 0.0, 30.0, 20.0] and flipped[2].tolist() == [0.0, 19.0, 1.0, 20.0]
    assert flipped[0, 0] == flipped[0, 2] == 26.0  # still zero width
    whole = bt.crop(s, 0, 0, 20, 30)  # the whole image as window: nothing moves, centres inside stay
    assert torch.equal(whole.boxes, boxes[centre_mask(boxes, 0, 0, 20, 30)])


def test_resize_and_pad_arguments_differ_from_v2_and_are_refused():
    s = random_sample(torch.Generator().manual_seed(4))
    assert F.resize(s.image, 20).shape[-2:] == (20, 28)  # v2: one int is the shorter side
    for size in (20, (20.0, 30), (20, 30, 1), "20x30"):
        with pytest.raises(TypeError, match="size"):
            bt.resize(s, size)
    with pytest.raises(ValueError, match="positive"):
        bt.resize(s, (0, 30))
    assert F.pad(s.image, [-2, 0, 0, 0]).shape[-1] == 51  # v2: negative padding crops
    with pytest.raises(ValueError, match="padding"):
        bt.pad(s, -2, 0, 0, 0)
    with pytest.raises(TypeError, match="left"):
        bt.pad(s, 1.5, 0, 0, 0)


def test_colour_and_random_arguments_are_checked():
    image = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError):  # v2 refuses a NaN hue, which would make a NaN image
        F.adjust_hue(image, float("nan"))
    for kwargs in ({"hue": float("nan")}, {"hue": 0.7}, {"saturation": float("nan")}, {"value": -1.0},
                   {"value": float("inf")}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            bt.adjust_hsv(image, **kwargs)
    with pytest.raises(TypeError, match="hue"):
        bt.adjust_hsv(image, hue=torch.tensor(0.1))
    with pytest.raises(TypeError, match="image"):
        bt.adjust_hsv((image * 255).to(torch.uint8))
    assert_close(bt.adjust_hsv(image, hue=0.5), F.adjust_hue(image, 0.5), atol=1e-5, rtol=0)
    s = random_sample(torch.Generator().manual_seed(6))
    g = torch.Generator().manual_seed(0)
    for fn, kwargs in ((bt.random_crop, {"min_scale": -0.1}), (bt.random_crop, {"min_scale": 2.0}),
                       (bt.random_zoom_out, {"max_ratio": float("nan")}), (bt.random_zoom_out, {"max_ratio": 0.5})):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            fn(s, g, **kwargs)
    for kwargs in ({"hue": 0.6}, {"saturation": 0.0}, {"value": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            bt.random_hsv(s, g, **kwargs)
    with pytest.raises(TypeError, match="boxes"):
        bt.rotated_box_bounds([[0.0, 0, 1, 1]], 10.0, (0.0, 0.0))
    with pytest.raises(TypeError, match="angle"):
        bt.rotated_box_bounds(s.boxes, "10", (0.0, 0.0))
