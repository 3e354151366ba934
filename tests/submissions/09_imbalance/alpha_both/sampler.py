# A correct sampler (the solution's), so that only the loss is judged.
def balanced_sample(labels, num_samples, generator):
    """num_samples indices into labels: a uniform class, then a uniform example of it."""
    if not isinstance(labels, torch.Tensor) or labels.dtype == torch.bool or labels.is_floating_point() \
            or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got {getattr(labels, 'dtype', type(labels))}")
    if labels.ndim != 1 or labels.numel() == 0 or labels.min() < 0:
        raise ValueError("labels must be a non-empty 1-D tensor of non-negative class indices")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    order = torch.argsort(labels, stable=True)  # example indices grouped by class
    _, sizes = torch.unique_consecutive(labels[order], return_counts=True)  # [K]
    starts = torch.cumsum(sizes, 0) - sizes
    cls = torch.randint(len(sizes), (num_samples,), generator=generator)
    pos = (torch.rand(num_samples, generator=generator, dtype=torch.float64) * sizes[cls]).long()
    return order[starts[cls] + pos]
