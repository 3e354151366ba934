# A typical wrong answer, the source note's method: each filter counted as k*k weights plus a
# bias, whatever the number of input channels (and groups); BatchNorm counted as having no
# parameters. Output sizes and the network walk are correct.
def conv_params(in_channels, out_channels, kernel_size, groups=1, bias=True):
    kh, kw = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    return (kh * kw + 1) * out_channels


def linear_params(in_features, out_features, bias=True):
    return in_features * out_features + (out_features if bias else 0)


def bn_params(num_features):
    return 0
