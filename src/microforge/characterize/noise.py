"""How much white noise an image holds: Immerkær's estimator of the noise standard deviation.

Written by hand because scikit-image's ``restoration.estimate_sigma`` (Donoho's wavelet MAD)
needs PyWavelets, which microforge does not otherwise depend on; Immerkær's estimator is one
3 x 3 convolution (scipy) and a mean.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import MicroforgeError

# the difference of two Laplacians: zero on any image whose grey level is locally a plane or a
# pure second-order term along one axis, so edges and gradients leave little in it and white noise
# of std sigma gives a response of std 6 sigma
_MASK = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_std(image: np.ndarray) -> float:
    """The standard deviation of the white Gaussian noise in ``image``, estimated as Immerkær
    (1996, "Fast noise variance estimation", CVIU 64: 300-302): sqrt(pi / 2) / 6 times the mean
    absolute response to the mask above, over the pixels away from the border.

    Parameters
    ----------
    image : ``(H, W)`` grey levels (any units; the result is in the same units), H, W >= 3.

    Returns
    -------
    float
        The noise std. Exact in expectation for white Gaussian noise on a locally planar image;
        fine texture (1-2 px laths) adds to it, so compare images of the same kind.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or min(image.shape) < 3:
        raise MicroforgeError(f"noise_std needs a 2-d image of at least 3 x 3 px, got shape {image.shape}")
    response = ndimage.convolve(image, _MASK, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2.0) * np.abs(response).mean() / 6.0)
