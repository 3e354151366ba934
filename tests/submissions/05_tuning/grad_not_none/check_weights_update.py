# A typical wrong answer: it checks only that each gradient exists (`.grad is not None`), not
# that it is finite and non-zero, nor that the step moved the parameter. It restores the model
# and optimizer correctly. It misses dead ReLUs, zero gates, exploding steps and parameters
# left out of the optimizer.
def check_weights_update(model, optimizer, inputs, target, loss_fn=F.cross_entropy):
    named = list(model.named_parameters())
    state = copy.deepcopy(model.state_dict())
    opt_state = copy.deepcopy(optimizer.state_dict())
    old_grads = {n: p.grad for n, p in named}
    modes = {m: m.training for m in model.modules()}
    try:
        model.train()
        for _, p in named:
            p.grad = None
        loss_fn(model(inputs), target).backward()
        has_grad = {n: p.grad is not None for n, p in named}
        optimizer.step()
    finally:
        model.load_state_dict(state)
        optimizer.load_state_dict(opt_state)
        for n, p in named:
            p.grad = old_grads[n]
        for m, training in modes.items():
            m.training = training
    return {n: "frozen" if not p.requires_grad else "ok" if has_grad[n] else "no_grad" for n, p in named}
