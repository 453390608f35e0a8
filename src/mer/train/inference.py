"""A model's class probabilities for a batch of samples, as training evaluates folds and `mer predict` a clip."""

import torch


@torch.no_grad()
def predict(model, images, inputs, run, batch_size=64):
    """Softmax class probabilities (N, C) float32 numpy for uint8 device images (N, 3, S, S), in eval mode.

    model: a module, or any callable of a batch (a fused group's fold).
    inputs: mer.train.augment.Inputs; run: mer.train.settings.run_settings.
    """
    device = run["device"]
    if isinstance(model, torch.nn.Module):
        model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = inputs.test(images[i: i + batch_size])
        if run["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run["amp"]):
            logits = model(x)
        out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy()
