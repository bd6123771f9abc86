"""MetaStyle's meta-training step and fast-adaptation step in PyTorch, for a side-by-side timing with JAX.

Written as a PyTorch user would (the official MetaStyle code is PyTorch): `nn.Module`s in NCHW, the
official parameter names (conv1.conv2d.weight, in1.weight, res1.conv1.conv2d.weight, ..., as
`metastyle_jax.convert` maps them), `torch.optim.Adam`, and an inner loop through
`torch.func.functional_call` with `torch.autograd.grad(..., create_graph=True)` for the exact second-order
meta-gradient. Same shapes and same math as metastyle_jax (transformer.py, vgg16.py, losses.py, adapt.py,
meta.py): the network reads RGB in [0, 1] (our convention; the official code reads [0, 255] and
`convert` folds the factor into conv1), the VGG16 input normalization and feature scale come from a
`vgg16.InputSpec`, the loss has the official reduction, and weights are copied from JAX params pytrees.

Images cross between the frameworks as numpy NHWC arrays; `nchw` turns them into tensors.
"""

import jax
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from metastyle_jax import convert, losses, transformer, vgg16, vgg_weights


class ConvLayer(nn.Module):
    """(Nearest upsampling by `upsample`,) reflection padding kernel // 2, then a convolution."""

    def __init__(self, c_in, c_out, kernel, stride=1, upsample=1):
        super().__init__()
        self.upsample, self.pad = upsample, kernel // 2
        self.conv2d = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x):
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv2d(F.pad(x, [self.pad] * 4, mode="reflect"))


class ResidualBlock(nn.Module):
    """conv-IN-ReLU-conv-IN plus the identity."""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)
        self.conv2, self.in2 = ConvLayer(c, c, 3), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x):
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """M(I_c; theta): (B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) in [0, 1] (supplementary Table 1).

    Sizes that are not multiples of 4 are reflection-padded up to one and cropped back, as in JAX."""

    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.in2 = ConvLayer(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.in3 = ConvLayer(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True)
        for i in range(1, 6):
            setattr(self, f"res{i}", ResidualBlock(128))
        self.deconv1, self.in4 = ConvLayer(128, 64, 3, upsample=2), nn.InstanceNorm2d(64, affine=True)
        self.deconv2, self.in5 = ConvLayer(64, 32, 3, upsample=2), nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, 9)

    def forward(self, x):
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            x = F.pad(x, [0, (-w) % 4, 0, (-h) % 4], mode="reflect")
        y = F.relu(self.in1(self.conv1(x)))
        y = F.relu(self.in2(self.conv2(y)))
        y = F.relu(self.in3(self.conv3(y)))
        for i in range(1, 6):
            y = getattr(self, f"res{i}")(y)
        y = F.relu(self.in4(self.deconv1(y)))
        y = F.relu(self.in5(self.deconv2(y)))
        return torch.sigmoid(self.deconv3(y))[..., :h, :w]


def instance_norm_names(net):
    """Names of the instance-norm scale and shift parameters (in1.weight, res3.in2.bias, ...), in order."""
    return [name for name, _ in net.named_parameters() if transformer.IN_NAME.match(name.split(".")[-2])]


def state_dict_from_params(params):
    """The TransformerNet state dict of a JAX params pytree: {official key: tensor}, HWIO -> OIHW."""
    def tensor(x):
        x = np.asarray(x, np.float32)
        return torch.from_numpy(np.array(x.transpose(3, 2, 0, 1) if x.ndim == 4 else x))
    return {convert.torch_key(path): tensor(x) for path, x in jax.tree_util.tree_leaves_with_path(params)}


def transformer_from_params(params, device="cpu"):
    """A TransformerNet on `device` holding the weights of a JAX params pytree."""
    net = TransformerNet()
    net.load_state_dict(state_dict_from_params(params))
    return net.to(device)


def params_like(template, tensors):
    """A JAX-layout numpy pytree shaped like `template` from {official key: tensor} (OIHW -> HWIO):
    to compare parameters or gradients with JAX's."""
    def leaf(path, x):
        t = tensors[convert.torch_key(path)].detach().cpu().double().numpy()
        return t.transpose(2, 3, 1, 0) if t.ndim == 4 else t
    return jax.tree_util.tree_map_with_path(leaf, template)


class VGG16Features(nn.Module):
    """Frozen VGG16 blocks 1-4 (torchvision's `features[:23]` layout) with the input normalization of an
    `InputSpec`: (B, 3, H, W) RGB in [0, 1] -> {relu1_2, relu2_2, relu3_3, relu4_3}, each divided by the
    spec's feature scale; `layer_weights` holds the spec's style-term factors, `style_block` the side of the
    pixel blocks the style term averages over (`style_view`)."""

    def __init__(self, spec):
        super().__init__()
        self.bgr, self.scale, self.feature_scale = spec.order == "BGR", spec.scale, spec.feature_scale
        self.layer_weights = dict(zip(vgg16.LAYERS, spec.layer_weights))
        self.style_block = spec.style_block
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))
        layers, c_in = [], 3
        for b, widths in enumerate(vgg16.BLOCKS):
            if b:
                layers.append(nn.MaxPool2d(2, 2))
            for width in widths:
                layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
                c_in = width
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)
        outputs = [i + 1 for i in vgg_weights.TORCHVISION_CONVS[:len(vgg16.CONV_NAMES)]]  # the ReLU after each conv
        ends = np.cumsum([len(w) for w in vgg16.BLOCKS]) - 1
        self.taps = {outputs[e]: name for e, name in zip(ends, vgg16.LAYERS)}

    def forward(self, images):
        x = images * self.scale
        if self.bgr:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        feats = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                feats[self.taps[i]] = x / self.feature_scale
                if len(feats) == len(self.taps):
                    break
        return feats


def vgg_from_params(vgg, device="cpu"):
    """A frozen VGG16Features on `device` with the weights and input spec of a `vgg16.VGG` (HWIO kernels)."""
    net = VGG16Features(vgg.spec)
    state = {}
    for name, n in zip(vgg16.CONV_NAMES, vgg_weights.TORCHVISION_CONVS):
        kernel = np.asarray(vgg.params[name]["kernel"], np.float32).transpose(3, 2, 0, 1)
        state[f"features.{n}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
        state[f"features.{n}.bias"] = torch.from_numpy(np.array(vgg.params[name]["bias"], np.float32))
    net.load_state_dict(state, strict=False)
    return net.to(device).eval()


def nchw(images, device="cpu"):
    """numpy (..., H, W, 3) -> float32 tensor (..., 3, H, W) on `device`."""
    x = torch.from_numpy(np.array(images, np.float32))
    return x.movedim(-1, -3).contiguous().to(device)


def gram(feat):
    """(B, C, H, W) -> (B, C, C): psi psi^T / (C H W), eq. 3."""
    b, c, h, w = feat.shape
    psi = feat.reshape(b, c, h * w)
    return torch.bmm(psi, psi.transpose(1, 2)) / (c * h * w)


def style_view(vgg, images):
    """(B, 3, H, W) images as the style term sees them: averaged over the VGG's style blocks
    (losses.style_features)."""
    return F.avg_pool2d(images, vgg.style_block) if vgg.style_block > 1 else images


def style_grams(vgg, styles, layers=losses.STYLE_LAYERS):
    """Gram targets of style images (S, 3, H, W): layer -> (S, C, C), no gradient."""
    with torch.no_grad():
        feats = vgg(style_view(vgg, styles))
        return {k: gram(feats[k]) for k in layers}


def content_features(vgg, contents):
    """relu2_2 of content images (B, 3, H, W): the content-loss target, no gradient."""
    with torch.no_grad():
        return vgg(contents)[losses.CONTENT_LAYER]


def perceptual_loss(vgg, outputs, content_feat, grams, alpha=1.0, beta=1e5):
    """Eq. 4 with the official reduction (losses.perceptual_loss): alpha * mean squared relu2_2 difference
    + beta * sum over layers of the mean squared Gram difference, each times the VGG's layer weight;
    grams: layer -> (1 or B, C, C). Returns (loss, content, style)."""
    feats = vgg(outputs)
    lc = F.mse_loss(feats[losses.CONTENT_LAYER], content_feat)
    if vgg.style_block > 1:
        feats = vgg(style_view(vgg, outputs))
    ls = sum(vgg.layer_weights[k] * F.mse_loss(gram(feats[k]), grams[k].expand(outputs.shape[0], -1, -1))
             for k in grams)
    return alpha * lc + beta * ls, lc, ls


def adapt_step(net, optimizer, vgg, grams, contents, alpha=1.0, beta=1e5):
    """One step of fast adaptation (eq. 8, adapt.adapt_step): Adam on every parameter of `net` for the
    perceptual loss of M(contents) against `contents` (B, 3, H, W) and the style Grams (layer -> (1, C, C)).
    Returns the loss before the update (a tensor)."""
    feat = content_features(vgg, contents)
    loss, _, _ = perceptual_loss(vgg, net(contents), feat, grams, alpha, beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def meta_optimizer(net, outer_lr=1e-3, lr_decay=2.5e-5):
    """The outer Adam over all of theta with lr outer_lr / (1 + k t) (supplementary eq. 1): (optimizer,
    scheduler); call scheduler.step() after each optimizer.step()."""
    optimizer = torch.optim.Adam(net.parameters(), lr=outer_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + lr_decay * t))
    return optimizer, scheduler


def inner_adapt(net, vgg, train, train_feat, grams, inner_lr, inner_steps, alpha, beta, first_order=False):
    """w_T of one style: `inner_steps` SGD steps of lr `inner_lr` on the instance-norm parameters only,
    from net's parameters, differentiable with respect to them (create_graph) unless `first_order`.
    Returns ({name: tensor} of all parameters at w_T, [inner losses, each before its step])."""
    params = dict(net.named_parameters())
    names = instance_norm_names(net)
    inner_losses = []
    for _ in range(inner_steps):
        loss, _, _ = perceptual_loss(vgg, functional_call(net, params, (train,)), train_feat, grams, alpha, beta)
        grads = torch.autograd.grad(loss, [params[k] for k in names], create_graph=not first_order)
        params = {**params, **{k: params[k] - inner_lr * g for k, g in zip(names, grads)}}
        inner_losses.append(loss.detach())
    return params, inner_losses


def meta_gradient(net, vgg, batch, t, *, inner_lr=1e-4, lr_decay=2.5e-5, inner_steps=1, alpha=1.0, beta=1e5,
                  first_order=False):
    """Accumulate into net's .grad the meta-gradient of eq. 7 at outer iteration t, the mean over the
    batch's styles of d(outer loss of w_s,T)/d theta, one style at a time (its graph freed after its
    backward). batch: tensors "train", "val" (S, B, 3, H, W) and "style" (S, 3, Hs, Ws). The inner lr is
    inner_lr / (1 + k t). Returns {"outer_loss", "inner_loss"} (floats, means over the styles)."""
    s = batch["style"].shape[0]
    lr = inner_lr / (1.0 + lr_decay * t)
    targets = style_grams(vgg, batch["style"])
    outer_total, inner_total = 0.0, 0.0  # tensors after the first style: no device sync inside the loop
    for i in range(s):
        grams = {k: g[i:i + 1] for k, g in targets.items()}
        train, val = batch["train"][i], batch["val"][i]
        fast, inner_losses = inner_adapt(net, vgg, train, content_features(vgg, train), grams, lr, inner_steps,
                                         alpha, beta, first_order)
        outer, _, _ = perceptual_loss(vgg, functional_call(net, fast, (val,)), content_features(vgg, val), grams,
                                      alpha, beta)
        (outer / s).backward()
        outer_total = outer_total + outer.detach() / s
        inner_total = inner_total + inner_losses[0] / s
    return {"outer_loss": float(outer_total), "inner_loss": float(inner_total)}


def meta_step(net, optimizer, scheduler, vgg, batch, t, **hyper):
    """One outer iteration (Algorithm 1's loop body, outer.train_step): the meta-gradient (`meta_gradient`,
    keyword `hyper`) then one outer Adam step and one decay step. Returns meta_gradient's metrics."""
    optimizer.zero_grad(set_to_none=True)
    metrics = meta_gradient(net, vgg, batch, t, **hyper)
    optimizer.step()
    scheduler.step()
    return metrics
