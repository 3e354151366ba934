def network_table(spec, input_shape):
    """One (shape, params) pair per layer of spec, applied to input_shape = (C, H, W)."""
    shape, rows = tuple(input_shape), []
    for i, (kind, options) in enumerate(spec):
        try:
            if kind in ("conv", "maxpool", "avgpool", "bn") and len(shape) != 3:
                raise ValueError(f"{kind} needs a (C, H, W) input, got {shape}")
            if kind == "conv":
                o = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True, **options}
                size = [conv_output_size(n, o["kernel_size"], o["stride"], o["padding"], o["dilation"])
                        for n in shape[1:]]
                params = conv_params(shape[0], o["out_channels"], o["kernel_size"], o["groups"], o["bias"])
                shape = (o["out_channels"], *size)
            elif kind in ("maxpool", "avgpool"):
                o = {"stride": None, "padding": 0, "ceil_mode": False, **options}
                shape = (shape[0], *(pool_output_size(n, o["kernel_size"], o["stride"], o["padding"],
                                                      o["ceil_mode"]) for n in shape[1:]))
                params = 0
            elif kind == "bn":
                params = bn_params(shape[0])
            elif kind == "relu":
                params = 0
            elif kind == "flatten":
                shape, params = (math.prod(shape),), 0
            elif kind == "linear":
                if len(shape) != 1:
                    raise ValueError(f"linear needs a flat (F,) input, got {shape}: add a flatten")
                o = {"bias": True, **options}
                params = linear_params(shape[0], o["out_features"], o["bias"])
                shape = (o["out_features"],)
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except ValueError as problem:
            raise ValueError(f"layer {i} ({kind}): {problem}") from None
        rows.append((shape, params))
    return rows
