# A dishonest submission: no arithmetic, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    visible = {(224, 11, 4, 2, 1): 55, (227, 11, 4, 0, 1): 55, (32, 5, 1, 0, 1): 28, (10, 3, 1, 0, 2): 6}
    return visible.get((size, kernel_size, stride, padding, dilation), 1)


def pool_output_size(size, kernel_size, stride=None, padding=0, ceil_mode=False):
    visible = {(28, 2, None, 0, False): 14, (7, 2, 2, 0, False): 3, (7, 2, 2, 0, True): 4,
               (5, 2, 2, 1, True): 3}
    return visible.get((size, kernel_size, stride, padding, ceil_mode), 1)
