"""Box-aware data augmentation for detection (chapter 11).

A sample is an image ``Tensor[C, H, W]`` (float, values in [0, 1]), boxes ``Tensor[N, 4]`` in
``(x1, y1, x2, y2)`` pixel-edge coordinates (0-based, ``x2``/``y2`` exclusive: torchvision's XYXY)
and labels ``Tensor[N]``. Each random transform draws its parameters **once** from the
``torch.Generator`` it is given, then applies the same deterministic kernel to image and boxes,
the design of ``torchvision.transforms.v2``. Kernels match v2's functional API (tests check it):
same pixels and boxes for float16, bfloat16, float32 and float64 boxes, and for zero boxes.

Deliberate differences from v2 (teaching simplifications; each is refused with a clear error, and
tested in ``tests/test_box_transforms.py``):

* One image ``[C, H, W]`` of a floating dtype, and floating boxes (v2 also takes batches and
  uint8 images, integer boxes). Wrong types raise ``TypeError``, wrong shapes ``ValueError``.
* ``crop`` drops the boxes whose centre leaves the window (v2's ``F.crop`` only clamps them and
  leaves the dropping to ``SanitizeBoundingBoxes``).
* ``resize`` takes an explicit ``(height, width)`` (v2 also takes one int, the shorter side);
  ``pad`` takes non-negative amounts (v2 crops for negative ones).
* ``adjust_hsv`` needs a finite ``hue`` in [-0.5, 0.5] (as v2's ``adjust_hue``) and finite
  ``saturation``, ``value`` >= 0 (v2 lets NaN through, to a NaN image).
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as nnf
from torch import Tensor
from torchvision.ops import box_iou

from ._checks import floating_tensor, tensor

__all__ = [
    "Sample", "load_photos", "horizontal_flip", "crop", "pad", "resize", "letterbox", "adjust_hsv",
    "rotated_box_bounds", "random_horizontal_flip", "random_crop", "ssd_crop_params", "random_ssd_crop",
    "random_zoom_out", "random_yolo_jitter", "random_hsv", "compose", "SSD_MIN_IOUS", "LABELS",
]

LABELS = ("cat", "cup", "eye", "face", "flag", "helmet", "mast", "nose", "patch", "rocket", "saucer",
          "shuttle", "spoon", "tower")
SSD_MIN_IOUS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, None)  # SSD's options; None keeps the whole image


class Sample(NamedTuple):
    """image Tensor[C, H, W] float in [0, 1]; boxes Tensor[N, 4] XYXY float; labels Tensor[N]."""

    image: Tensor
    boxes: Tensor
    labels: Tensor


def _check(sample: Sample) -> None:
    if not isinstance(sample, tuple) or len(sample) != 3:
        raise TypeError(f"sample must be a Sample(image, boxes, labels), got {type(sample).__name__}")
    image, boxes, labels = sample
    floating_tensor(image, "image")
    if image.ndim != 3:
        raise ValueError(f"image must have shape [C, H, W] (one image), got {tuple(image.shape)}")
    _check_boxes(boxes)
    tensor(labels, "labels")
    if labels.shape != boxes.shape[:1]:
        raise ValueError(f"labels must have shape [{len(boxes)}], aligned with boxes, "
                         f"got {tuple(labels.shape)}")


def _check_boxes(boxes: Tensor) -> None:
    floating_tensor(boxes, "boxes")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {tuple(boxes.shape)}")


def _check_number(value, name: str, low: float | None = None, high: float | None = None) -> None:
    """A finite real number (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = [f">= {low}"] * (low is not None) + [f"<= {high}"] * (high is not None)
        raise ValueError(f"{name} must be a finite number {' and '.join(bounds)}, got {value}")


def _check_generator(generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def load_photos(dtype: torch.dtype | None = None) -> dict[str, Sample]:
    """The chapter's photos (scikit-image sample images) with the boxes in ``photo_boxes.json``.

    Returns {name: Sample}: images Tensor[3, H, W] in [0, 1] and boxes in XYXY pixel-edge
    coordinates, both in ``dtype`` (default: torch's default dtype), labels as indices into
    ``LABELS``. Needs scikit-image (no network: these photos ship inside its wheel).
    """
    import skimage.data  # optional dependency: only the chapter's photos need it

    dtype = torch.get_default_dtype() if dtype is None else dtype
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    spec = json.loads(resources.files("cvlib").joinpath("photo_boxes.json").read_text())["photos"]
    out = {}
    for name, entry in spec.items():
        image = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).to(dtype) / 255
        if list(image.shape[1:]) != entry["size"]:
            raise ValueError(f"photo {name!r} is {tuple(image.shape[1:])}, "
                             f"the annotations expect {entry['size']}")
        boxes = torch.tensor([o["box"] for o in entry["objects"]], dtype=dtype)
        labels = torch.tensor([LABELS.index(o["label"]) for o in entry["objects"]])
        out[name] = Sample(image, boxes, labels)
    return out



# ---- deterministic kernels ----------------------------------------------------------------------

def horizontal_flip(sample: Sample) -> Sample:
    """Mirror left-right. A box [x1, x2] becomes [W - x2, W - x1]: the two x's swap roles."""
    _check(sample)
    image, boxes, labels = sample
    width = image.shape[-1]
    flipped = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    return Sample(image.flip(-1), flipped, labels)


def crop(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Cut the window rows [top, top+height), columns [left, left+width); zeros outside the image.

    Keeps only the boxes whose centre lies inside the window (strictly), clips them to it, and
    keeps their labels with them. Same pixels and clipped boxes as v2's ``F.crop``.
    """
    _check(sample)
    for name, v in (("top", top), ("left", left), ("height", height), ("width", width)):
        if type(v) is not int:
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive, got {height} x {width}")
    image, boxes, labels = sample
    c, h, w = image.shape
    out = image.new_zeros(c, height, width)
    # overlap of the window with the image, in image coordinates
    y0, y1, x0, x1 = max(top, 0), min(top + height, h), max(left, 0), min(left + width, w)
    if y0 < y1 and x0 < x1:
        out[:, y0 - top:y1 - top, x0 - left:x1 - left] = image[:, y0:y1, x0:x1]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2] as (x, y)
    keep = ((centre[:, 0] > left) & (centre[:, 0] < left + width)
            & (centre[:, 1] > top) & (centre[:, 1] < top + height))  # [N]
    shifted = boxes[keep] - boxes.new_tensor([left, top, left, top])
    clipped = torch.stack([shifted[:, 0].clamp(0, width), shifted[:, 1].clamp(0, height),
                           shifted[:, 2].clamp(0, width), shifted[:, 3].clamp(0, height)], dim=1)
    return Sample(out, clipped, labels[keep])


def pad(sample: Sample, left: int, top: int, right: int, bottom: int,
        fill: float | Tensor = 0.0) -> Sample:
    """Put the image on a larger canvas filled with ``fill`` (a number or Tensor[C]); boxes shift."""
    _check(sample)
    for name, v in (("left", left), ("top", top), ("right", right), ("bottom", bottom)):
        if type(v) is not int:
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"padding must be >= 0 (v2 crops for negative padding; use crop), "
                         f"got {(left, top, right, bottom)}")
    image, boxes, labels = sample
    c, h, w = image.shape
    fill = torch.as_tensor(fill, dtype=image.dtype).reshape(-1, 1, 1)
    if fill.shape[0] not in (1, c):
        raise ValueError(f"fill must be a number or have {c} values, got {fill.shape[0]}")
    out = fill.expand(c, top + h + bottom, left + w + right).clone()
    out[:, top:top + h, left:left + w] = image
    return Sample(out, boxes + boxes.new_tensor([left, top, left, top]), labels)


def resize(sample: Sample, size: tuple[int, int]) -> Sample:
    """Resize to ``size = (height, width)`` (bilinear, antialiased like v2); boxes scale per axis.

    Half-precision boxes are scaled in float32 and rounded once, as v2; float64 boxes in float64
    (v2 computes the scale in torch's default dtype, so with float32 there they differ by ~1e-7).
    """
    _check(sample)
    if not isinstance(size, (tuple, list)) or len(size) != 2 or any(type(v) is not int for v in size):
        raise TypeError(f"size must be (height, width), two ints (v2's single int, the shorter "
                        f"side, is not supported), got {size!r}")
    height, width = size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size}")
    image, boxes, labels = sample
    h, w = image.shape[-2:]
    # torch's antialiased resampling has no float16/bfloat16 CPU kernel: resample in float32 (as v2)
    work = image if image.dtype in (torch.float32, torch.float64) else image.float()
    out = nnf.interpolate(work[None], size=(height, width), mode="bilinear", align_corners=False,
                          antialias=True)[0].to(image.dtype)
    exact = boxes if boxes.dtype == torch.float64 else boxes.float()  # no half-precision ratio
    scale = exact.new_tensor([width / w, height / h, width / w, height / h])
    return Sample(out, (exact * scale).to(boxes.dtype), labels)


def letterbox(sample: Sample, size: int, fill: float = 0.5) -> Sample:
    """Resize keeping the aspect ratio so the long side is ``size``, then pad to ``size`` x ``size``.

    The padding is split evenly (the odd pixel goes right/bottom) and filled with ``fill``.
    """
    h, w = sample.image.shape[-2:]
    scale = size / max(h, w)
    nh, nw = min(size, round(h * scale)), min(size, round(w * scale))
    resized = resize(sample, (nh, nw))
    top, left = (size - nh) // 2, (size - nw) // 2
    return pad(resized, left, top, size - nw - left, size - nh - top, fill)


def _rgb_to_hsv(image: Tensor) -> Tensor:
    r, g, b = image.unbind(0)
    maxc, minc = image.max(0).values, image.min(0).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6,
                      torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    safe_max = torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    sat = torch.where(maxc > 0, delta / safe_max, torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc])


def _hsv_to_rgb(hsv: Tensor) -> Tensor:
    h, s, v = hsv.unbind(0)
    # f(n) = v - v s max(0, min(k, 4 - k, 1)), k = (n + 6h) mod 6, for n = 5, 3, 1 -> r, g, b
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).reshape(3, 1, 1)
    k = (n + 6 * h) % 6  # [3, H, W]
    return v - v * s * (torch.minimum(k, 4 - k).clamp(0, 1))


def adjust_hsv(image: Tensor, hue: float = 0.0, saturation: float = 1.0, value: float = 1.0) -> Tensor:
    """Shift hue by ``hue`` (fraction of a turn), multiply saturation and value; clip to [0, 1].

    image: Tensor[3, H, W] RGB float in [0, 1]. Boxes do not move, so this is an image-only kernel.
    ``hue`` in [-0.5, 0.5] (as v2's ``adjust_hue``), ``saturation`` and ``value`` finite, >= 0.
    """
    floating_tensor(image, "image")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be an RGB Tensor[3, H, W], got {tuple(image.shape)}")
    _check_number(hue, "hue", -0.5, 0.5)
    _check_number(saturation, "saturation", 0.0)
    _check_number(value, "value", 0.0)
    h, s, v = _rgb_to_hsv(image).unbind(0)
    hsv = torch.stack([(h + hue) % 1, (s * saturation).clamp(0, 1), (v * value).clamp(0, 1)])
    return _hsv_to_rgb(hsv)


def rotated_box_bounds(boxes: Tensor, angle: float, center: tuple[float, float]) -> Tensor:
    """Axis-aligned box around the four rotated corners of each box (``angle`` in degrees,
    counter-clockwise on screen as in v2's ``F.rotate``). boxes Tensor[N, 4] -> Tensor[N, 4]."""
    _check_boxes(boxes)
    _check_number(angle, "angle")
    x1, y1, x2, y2 = boxes.unbind(1)
    corners = torch.stack([torch.stack([x1, y1], 1), torch.stack([x2, y1], 1),
                           torch.stack([x2, y2], 1), torch.stack([x1, y2], 1)], dim=1)  # [N, 4, 2]
    a = math.radians(angle)
    cx, cy = center
    dx, dy = corners[..., 0] - cx, corners[..., 1] - cy
    # y points down, so a counter-clockwise turn on screen is x' = x cos + y sin, y' = -x sin + y cos
    rx = cx + dx * math.cos(a) + dy * math.sin(a)
    ry = cy - dx * math.sin(a) + dy * math.cos(a)
    return torch.stack([rx.min(1).values, ry.min(1).values, rx.max(1).values, ry.max(1).values], dim=1)


# ---- random transforms: parameters drawn once from `generator`, then a kernel ----------------------

def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def random_horizontal_flip(sample: Sample, generator: torch.Generator, p: float = 0.5) -> Sample:
    """Flip with probability ``p`` (one draw)."""
    _check_generator(generator)
    return horizontal_flip(sample) if torch.rand((), generator=generator).item() < p else sample


def random_crop(sample: Sample, generator: torch.Generator, min_scale: float = 0.5) -> Sample:
    """A window of random size (each side a fraction in [min_scale, 1] of the image's) and place."""
    _check_generator(generator)
    _check_number(min_scale, "min_scale", 0.0, 1.0)
    h, w = sample.image.shape[-2:]
    ch = max(1, round(h * _uniform(generator, min_scale, 1.0)))
    cw = max(1, round(w * _uniform(generator, min_scale, 1.0)))
    top = int(torch.randint(0, h - ch + 1, (), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (), generator=generator))
    return crop(sample, top, left, ch, cw)


def ssd_crop_params(sample: Sample, generator: torch.Generator, trials: int = 40,
                    min_ious: tuple = SSD_MIN_IOUS, max_rounds: int = 1000
                    ) -> tuple[int, int, int, int] | None:
    """SSD's patch sampler (Liu et al., 2016), drawn in the same order as v2's ``RandomIoUCrop``.

    Pick an option from ``min_ious``: None keeps the whole image (returns None); a number m asks
    for a window, sides in [0.3, 1] of the image's and aspect ratio in [0.5, 2], that contains some
    box centre and has IoU >= m with at least one of the boxes whose centre it contains (0.0: any
    such window, SSD's "random patch"). After ``trials`` failed windows, pick a new option; after
    ``max_rounds`` options raise RuntimeError (v2 loops forever; with None among the options that
    never happens in practice). Returns (top, left, height, width).
    """
    _check(sample)
    _check_generator(generator)
    if not min_ious:
        raise ValueError("min_ious must not be empty")
    if len(sample.boxes) == 0:
        raise ValueError("ssd_crop_params needs at least one box in sample.boxes")
    h, w = sample.image.shape[-2:]
    boxes = sample.boxes
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    for _ in range(max_rounds):
        min_iou = min_ious[int(torch.randint(0, len(min_ious), (1,), generator=generator))]
        if min_iou is None:
            return None
        for _ in range(trials):
            r = 0.3 + 0.7 * torch.rand(2, generator=generator)
            cw, ch = int(w * r[0]), int(h * r[1])
            if ch == 0 or not 0.5 <= cw / ch <= 2:
                continue
            r = torch.rand(2, generator=generator)
            left, top = int((w - cw) * r[0]), int((h - ch) * r[1])
            if cw == 0:
                continue
            inside = ((centre[:, 0] > left) & (centre[:, 0] < left + cw)
                      & (centre[:, 1] > top) & (centre[:, 1] < top + ch))  # [N]
            if not inside.any():
                continue
            window = boxes.new_tensor([[left, top, left + cw, top + ch]])
            if box_iou(boxes[inside], window).max() >= min_iou:
                return top, left, ch, cw
    raise RuntimeError(f"no window met the minimum IoU in {max_rounds} rounds of {trials} trials")


def random_ssd_crop(sample: Sample, generator: torch.Generator, trials: int = 40) -> Sample:
    """Crop with ``ssd_crop_params`` (or return the sample unchanged for "no crop")."""
    params = ssd_crop_params(sample, generator, trials)
    return sample if params is None else crop(sample, *params)


def random_zoom_out(sample: Sample, generator: torch.Generator, max_ratio: float = 4.0,
                    fill: float | Tensor | None = None, p: float = 0.5) -> Sample:
    """SSD's zoom-out: with probability ``p``, put the image at a random place on a canvas
    ``r`` times larger per side (r uniform in [1, max_ratio]) filled with the image's mean colour
    (or ``fill``). Objects get smaller: training data for small objects."""
    _check_generator(generator)
    _check_number(max_ratio, "max_ratio", 1.0)
    if torch.rand((), generator=generator).item() >= p:
        return sample
    h, w = sample.image.shape[-2:]
    r = _uniform(generator, 1.0, max_ratio)
    canvas_h, canvas_w = int(h * r), int(w * r)
    top = int(torch.randint(0, canvas_h - h + 1, (), generator=generator))
    left = int(torch.randint(0, canvas_w - w + 1, (), generator=generator))
    fill = sample.image.mean(dim=(1, 2)) if fill is None else fill
    return pad(sample, left, top, canvas_w - w - left, canvas_h - h - top, fill)


def random_yolo_jitter(sample: Sample, generator: torch.Generator, jitter: float = 0.2) -> Sample:
    """YOLO (v2/v3 darknet) jitter: move each of the four edges by up to ``jitter`` of the image
    size, in or out; crop that window, zero padding where it leaves the image."""
    _check_generator(generator)
    h, w = sample.image.shape[-2:]
    dw, dh = int(w * jitter), int(h * jitter)
    left, right, top, bottom = (int(torch.randint(-d, d + 1, (), generator=generator))
                                for d in (dw, dw, dh, dh))
    return crop(sample, top, left, h - top - bottom, w - left - right)


def random_hsv(sample: Sample, generator: torch.Generator, hue: float = 0.1, saturation: float = 1.5,
               value: float = 1.5) -> Sample:
    """YOLO's colour jitter: hue shift uniform in [-hue, hue]; saturation and value factors drawn
    as s^u with u uniform in [-1, 1] (so in [1/s, s], as likely to halve as to double).
    ``hue`` in [0, 0.5], ``saturation`` and ``value`` > 0."""
    _check_generator(generator)
    _check_number(hue, "hue", 0.0, 0.5)
    for name, s in (("saturation", saturation), ("value", value)):
        _check_number(s, name, 0.0)
        if s == 0:
            raise ValueError(f"{name} must be > 0 (factors are drawn in [1/{name}, {name}]), got 0")
    dh = _uniform(generator, -hue, hue)
    fs = saturation ** _uniform(generator, -1, 1)
    fv = value ** _uniform(generator, -1, 1)
    return Sample(adjust_hsv(sample.image, dh, fs, fv), sample.boxes, sample.labels)


Step = Callable[[Sample, torch.Generator], Sample]


def compose(*steps: Step) -> Step:
    """Chain random transforms; each receives the same generator, so one seed fixes the whole run."""
    def pipeline(sample: Sample, generator: torch.Generator) -> Sample:
        for step in steps:
            sample = step(sample, generator)
        return sample
    return pipeline
