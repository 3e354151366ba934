# A typical wrong answer: ceil_mode rounds up, but a last window that would start in the
# right padding is kept (torch drops it). Everything else is correct.
def _check_int(name, value, minimum):
    """Raise TypeError unless value is an int (not a bool), ValueError if below minimum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    """Output length of nn.Conv2d along one dimension."""
    _check_int("size", size, 1)
    _check_int("kernel_size", kernel_size, 1)
    _check_int("stride", stride, 1)
    _check_int("padding", padding, 0)
    _check_int("dilation", dilation, 1)
    span = dilation * (kernel_size - 1) + 1
    if span > size + 2 * padding:
        raise ValueError(f"kernel_size={kernel_size} (extent {span}) does not fit the padded input")
    return (size + 2 * padding - span) // stride + 1


def pool_output_size(size, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Output length of nn.MaxPool2d / nn.AvgPool2d along one dimension."""
    _check_int("size", size, 1)
    _check_int("kernel_size", kernel_size, 1)
    stride = kernel_size if stride is None else _check_int("stride", stride, 1)
    _check_int("padding", padding, 0)
    if not isinstance(ceil_mode, bool):
        raise TypeError(f"ceil_mode must be a bool, got {type(ceil_mode).__name__}")
    if padding > kernel_size // 2:
        raise ValueError(f"padding={padding} must be at most kernel_size // 2")
    room = size + 2 * padding - kernel_size
    out = (-(-room // stride) if ceil_mode else room // stride) + 1
    if out < 1:
        raise ValueError(f"kernel_size={kernel_size} does not fit the padded input: empty output")
    return out
