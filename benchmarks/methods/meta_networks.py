"""Shen, Yan and Zeng (CVPR 2018), neural style transfer via meta networks.

Architecture of the official code (FalongShen/styletransfer, Caffe, model "train_32": generated
network of 7 MB) as laid out in its PyTorch port (ypw's MetaNet): a frozen VGG16 gives the style's
channel mean and std at relu1_2, relu2_2, relu3_3, relu4_3 (2 x 960 = 1920 numbers); a hidden fully
connected layer 1920 -> 14 x 128 (ReLU); 14 fully connected layers 128 -> P_g, one per predicted
convolution (weights and bias) of the image transformation network. The network is Johnson's with
widths base, 2 base, 4 base (base 32: the MetaStyle/Johnson network, 1,679,235 parameters); its first
and last 9x9 convolutions and its instance-norm scales/shifts are ordinary (style-independent)
parameters, the other 14 convolutions are predicted. Per image: VGG16 on the style, the meta network,
the transformer forward with the predicted weights.
Parameters (base 32): meta network 217,640,224 + fixed transformer part 18,787 = 217,659,011; with the
VGG16 convolutions to relu4_3 (7,635,264) 225,294,275. Paper: 219.32M.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util

from metastyle_jax import transformer, vgg16

NAME = "Shen et al. (meta networks)"
PAPER = {"params_m": 219.32, 256: 0.0045, 512: 0.0147}
HIDDEN = 128
BASE = 32
FIXED_CONVS = ("conv1", "deconv3")


class Transformer(nn.Module):
    """metastyle_jax.transformer.TransformerNet with widths base, 2 base, 4 base (same names):
    (B, H, W, 3) in [0, 1], H and W multiples of 4 -> (B, H, W, 3) in [0, 1]."""

    base: int = BASE

    @nn.compact
    def __call__(self, x):
        b, conv = self.base, transformer.ConvLayer
        norm = transformer.InstanceNorm
        y = nn.relu(norm(name="in1")(conv(b, 9, name="conv1")(x)))
        y = nn.relu(norm(name="in2")(conv(2 * b, 3, 2, name="conv2")(y)))
        y = nn.relu(norm(name="in3")(conv(4 * b, 3, 2, name="conv3")(y)))
        for i in range(1, 6):
            y = transformer.ResidualBlock(name=f"res{i}")(y)
        y = nn.relu(norm(name="in4")(conv(2 * b, 3, 1, 2, name="deconv1")(y)))
        y = nn.relu(norm(name="in5")(conv(b, 3, 1, 2, name="deconv2")(y)))
        return jax.nn.sigmoid(conv(3, 9, name="deconv3")(y))


def _template(base):
    """The transformer's flattened parameter shapes: {path tuple: ShapeDtypeStruct}."""
    shapes = jax.eval_shape(lambda: Transformer(base).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3))))
    return traverse_util.flatten_dict(shapes["params"])


def predicted_groups(base=BASE):
    """[(group name, [(path, shape)])]: the 14 convolutions whose kernel and bias the meta network predicts."""
    groups = {}
    for path, leaf in _template(base).items():
        if path[-2] == "conv2d" and path[0] not in FIXED_CONVS:
            groups.setdefault("/".join(path[:-2]), []).append((path, leaf.shape))
    return list(groups.items())


class MetaNet(nn.Module):
    """Style statistics (B, 1920) -> {group: (B, P_g)} predicted weights."""

    base: int = BASE

    @nn.compact
    def __call__(self, stats):
        groups = predicted_groups(self.base)
        hidden = nn.relu(nn.Dense(HIDDEN * len(groups), name="hidden")(stats))
        out = {}
        for g, (name, leaves) in enumerate(groups):
            size = sum(math.prod(s) for _, s in leaves)
            out[name] = nn.Dense(size, name=f"fc_{name.replace('/', '_')}")(
                hidden[:, g * HIDDEN:(g + 1) * HIDDEN])
        return out


def style_stats(vgg_params, style):
    """Channel mean and std of the style's VGG16 relu1_2, relu2_2, relu3_3, relu4_3 (ImageNet input
    normalization): (B, Hs, Ws, 3) -> (B, 1920)."""
    feats = vgg16.features(vgg16.VGG(vgg_params, vgg16.IMAGENET_SPEC), style)
    parts = [f(feats[k], axis=(1, 2)) for k in vgg16.LAYERS for f in (jnp.mean, jnp.std)]
    return jnp.concatenate(parts, axis=-1)


def init(key, size=32, base=BASE):
    """{"vgg16", "meta", "fixed"}: random VGG16, meta network and style-independent transformer parameters."""
    k1, k2, k3 = jax.random.split(key, 3)
    full = traverse_util.flatten_dict(Transformer(base).init(k3, jnp.zeros((1, size, size, 3)))["params"])
    predicted = {p for _, leaves in predicted_groups(base) for p, _ in leaves}
    fixed = traverse_util.unflatten_dict({p: v for p, v in full.items() if p not in predicted})
    return {"vgg16": vgg16.VGG16Features().init(k1, jnp.zeros((1, 16, 16, 3)))["params"],
            "meta": MetaNet(base).init(k2, jnp.zeros((1, 1920)))["params"], "fixed": fixed}


def transformer_params(variables, stats, base=BASE):
    """The transformer's params pytree for one style: fixed parameters + the meta network's prediction."""
    pred = MetaNet(base).apply({"params": variables["meta"]}, stats)
    flat = dict(traverse_util.flatten_dict(variables["fixed"]))
    for name, leaves in predicted_groups(base):
        offset = 0
        for path, shape in leaves:
            n = math.prod(shape)
            flat[path] = pred[name][0, offset:offset + n].reshape(shape)
            offset += n
    return traverse_util.unflatten_dict(flat)


def meta_count(base=BASE):
    """Hand-computed meta-network count: hidden layer + one (128 + 1) x P_g layer per predicted conv."""
    convs = [(base, 2 * base), (2 * base, 4 * base)] + [(4 * base, 4 * base)] * 10 + \
        [(4 * base, 2 * base), (2 * base, base)]
    sizes = [9 * i * o + o for i, o in convs]
    return 1920 * HIDDEN * len(sizes) + HIDDEN * len(sizes) + sum((HIDDEN + 1) * p for p in sizes)


def paper_count(base=BASE):
    """Meta network + the transformer's fixed part (the convention closest to the paper's 219.32M)."""
    fixed = 81 * 3 * base + base + 81 * base * 3 + 3 + 2 * (base + 2 * base + 4 * base + 40 * base + 2 * base + base)
    return meta_count(base) + fixed


def stylize(variables, content, style, base=BASE):
    """content (1, H, W, 3), style (1, Hs, Ws, 3) in [0, 1], H, W multiples of 4 -> (1, H, W, 3)."""
    params = transformer_params(variables, style_stats(variables["vgg16"], style), base)
    return Transformer(base).apply({"params": params}, content)


def count_candidates(base=BASE):
    """Counts under the conventions one might read the paper's 219.32M with: {label: count}."""
    vgg_convs = sum(9 * i * o + o for i, o in ((3, 64), (64, 64), (64, 128), (128, 128), (128, 256),
                                               (256, 256), (256, 256), (256, 512), (512, 512), (512, 512)))
    vgg_full = vgg_convs + 3 * 2_359_808 + 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    return {"meta network only": meta_count(base), "meta network + fixed transformer part": paper_count(base),
            "+ VGG16 convolutions to relu4_3 (what runs)": paper_count(base) + vgg_convs,
            "+ whole VGG16 with classifier": paper_count(base) + vgg_full}
