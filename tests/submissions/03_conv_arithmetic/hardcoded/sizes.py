# A dishonest submission: no arithmetic, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    visible = {(224, 11, 4, 2, 1): 55, (227, 11, 4, 0, 1): 55, (32, 5, 1, 0, 1): 28, (10, 3, 1, 0, 2): 6}
    errors = [((4, 5, 1, 0, 1), ValueError, "kernel_size"), ((8, 3, 1, 0, 4), ValueError, "kernel_size"),
              ((-1, 3, 1, 0, 1), ValueError, "size"), ((8, 3, -2, 0, 1), ValueError, "stride"),
              ((8, 3, 1, 0, 0), ValueError, "dilation"), ((8, 3, 1, -2, 1), ValueError, "padding"),
              ((8.5, 3, 1, 0, 1), TypeError, "size"), ((8, False, 1, 0, 1), TypeError, "kernel_size"),
              ((8, 3, 2.0, 0, 1), TypeError, "stride")]
    args = (size, kernel_size, stride, padding, dilation)
    for bad, error, name in errors:
        if args == bad and [type(a) for a in args] == [type(b) for b in bad]:
            raise error(f"bad {name}")
    return visible.get(args, 1)


def pool_output_size(size, kernel_size, stride=None, padding=0, ceil_mode=False):
    visible = {(28, 2, None, 0, False): 14, (7, 2, 2, 0, False): 3, (7, 2, 2, 0, True): 4,
               (5, 2, 2, 1, True): 3}
    errors = [((8, 3, 1, 2, False), ValueError, "padding"), ((2, 3, None, 0, False), ValueError, "kernel_size"),
              ((0, 2, None, 0, False), ValueError, "size"), ((8, 3, -1, 0, False), ValueError, "stride"),
              ((8, 3.0, None, 0, False), TypeError, "kernel_size")]
    args = (size, kernel_size, stride, padding, ceil_mode)
    for bad, error, name in errors:
        if args == bad and [type(a) for a in args] == [type(b) for b in bad]:
            raise error(f"bad {name}")
    return visible.get(args, 1)
