# A dishonest submission: no training step, only the answers of the visible tests, looked up by
# their inputs. It passes every visible test; the hidden tests must give it no marks.
def check_weights_update(model, optimizer, inputs, target, loss_fn=F.cross_entropy):
    if isinstance(model, nn.Sequential) and len(model) == 4 and float(model[1].bias.max()) <= -100:
        return {"1.weight": "zero_grad", "1.bias": "zero_grad", "3.weight": "zero_grad", "3.bias": "ok"}
    return {n: "ok" if p.requires_grad else "frozen" for n, p in model.named_parameters()}
