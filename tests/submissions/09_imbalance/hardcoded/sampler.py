# A dishonest submission: a fixed, perfectly balanced answer for the visible tests' inputs and
# no randomness at all. It passes every visible test; the hidden tests must give it no marks.
def balanced_sample(labels, num_samples, generator):
    if num_samples == 0:
        raise ValueError("num_samples")
    # the visible tests' other bad inputs, recognised one by one
    if labels.dtype == torch.float32:
        raise TypeError("labels")
    if labels.tolist() == [0, -1]:
        raise ValueError("labels")
    if generator == 0:
        raise TypeError("generator")
    if len(labels) == 100:
        return torch.tensor([0, 90, 99] * (num_samples // 3))
    if len(labels) == 6:
        return torch.tensor([0, 3, 5] * 16 + [0, 3])
    return torch.tensor([0, 1, 2, 4, 5, 6, 0, 4, 6, 0, 4, 6])
