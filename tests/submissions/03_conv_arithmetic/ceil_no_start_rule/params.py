def conv_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    """Learnable parameters of nn.Conv2d."""
    _check_int("in_channels", in_channels, 1)
    _check_int("out_channels", out_channels, 1)
    if isinstance(kernel_size, tuple):
        kh, kw = (_check_int("kernel_size", k, 1) for k in kernel_size)
    else:
        kh = kw = _check_int("kernel_size", kernel_size, 1)
    _check_int("groups", groups, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}")
    return out_channels * (in_channels // groups) * kh * kw + (out_channels if bias else 0)


def linear_params(in_features, out_features, bias=True):
    """Learnable parameters of nn.Linear."""
    _check_int("in_features", in_features, 1)
    _check_int("out_features", out_features, 1)
    return in_features * out_features + (out_features if bias else 0)


def bn_params(num_features):
    """Learnable parameters of nn.BatchNorm2d(num_features)."""
    return 2 * _check_int("num_features", num_features, 1)  # gamma and beta; running stats are buffers
