"""Colour preservation: a stylized image's luminance with the content image's colours.

Colours are separated with YCbCr, ITU-R BT.601 full range (the JPEG/JFIF and Pillow convention), on
values in [0, 1]: Y in [0, 1], Cb and Cr in [0, 1] centred on 0.5. The inverse is the exact inverse matrix
of the forward one (not JFIF's rounded 1.402, 1.772, ... constants), so a round trip is exact up to rounding.
Every function works on numpy or jax arrays of shape (..., 3).
"""

import numpy as np

# BT.601 luma weights; Cb = (B - Y) / (2 (1 - KB)) + 0.5, Cr = (R - Y) / (2 (1 - KR)) + 0.5 (JFIF)
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
RGB_TO_YCBCR = np.array([[KR, KG, KB],
                         [-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5],
                         [0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR))]])
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)
CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb):
    """RGB (..., 3) in [0, 1] -> YCbCr (..., 3): Y in [0, 1], Cb and Cr in [0, 1] (0.5 = no colour)."""
    return rgb @ RGB_TO_YCBCR.T.astype(rgb.dtype) + CHROMA_OFFSET.astype(rgb.dtype)


def ycbcr_to_rgb(ycbcr):
    """YCbCr (..., 3) as `rgb_to_ycbcr` gives -> RGB (..., 3); not clipped (see `preserve_color`)."""
    return (ycbcr - CHROMA_OFFSET.astype(ycbcr.dtype)) @ YCBCR_TO_RGB.T.astype(ycbcr.dtype)


def preserve_color(stylized, content):
    """The stylized image's luminance (Y) with the content's chroma (Cb, Cr), back in RGB clipped to [0, 1].

    stylized: (..., H, W, 3); content: the same shape, or one (h, w, 3) numpy image of another size, which
    is resized (Lanczos) to (H, W) first. Returns the stylized image's shape and dtype.
    """
    if content.shape[-3:-1] != stylized.shape[-3:-1]:
        if content.ndim != 3:
            raise ValueError(f"preserve_color: content {content.shape} and stylized {stylized.shape} differ in "
                             "size; only a single (h, w, 3) content image is resized")
        from metastyle_jax import images

        content = images.resize(np.asarray(content), size=stylized.shape[-3:-1])
    y = rgb_to_ycbcr(stylized)[..., :1]
    chroma = rgb_to_ycbcr(content.astype(stylized.dtype))[..., 1:]
    merged = ycbcr_to_rgb(_concat(y, chroma))
    return merged.clip(0.0, 1.0)


def _concat(y, chroma):
    """Y (..., 1) and CbCr (..., 2) -> (..., 3), numpy or jax alike."""
    if isinstance(y, np.ndarray) and isinstance(chroma, np.ndarray):
        return np.concatenate([y, chroma], axis=-1)
    import jax.numpy as jnp

    return jnp.concatenate([y, chroma], axis=-1)
