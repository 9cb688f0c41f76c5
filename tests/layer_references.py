"""Independent float64 NumPy references of the layers, shared by the layer tests."""

import numpy as np

EPS = 1e-4


def np_spectral_normalize(w, u, eps=EPS, style="rsqrt"):
    """docs/tfhub_layout.md §4 in float64 NumPy: one power iteration from u.

    style "rsqrt" scales by 1/sqrt(|x|^2 + eps) (the hub), "clamp" by 1/max(|x|, eps)
    (BigGAN-PyTorch's F.normalize).
    """
    unit = {
        "rsqrt": lambda x: x / np.sqrt(np.sum(x**2) + eps),
        "clamp": lambda x: x / max(np.sqrt(np.sum(x**2)), eps),
    }[style]
    m = w.reshape(-1, w.shape[-1]).astype(np.float64)
    v = unit(u.astype(np.float64) @ m.T)
    u_new = unit(v @ m)
    sigma = ((v @ m) @ u_new.T).item()
    return w / sigma, u_new, sigma


def np_conv_same(x, k):
    """Naive stride-1 SAME convolution, NHWC x HWIO, float64."""
    kh, kw = k.shape[:2]
    ph, pw = kh // 2, kw // 2
    xp = np.pad(x, [(0, 0), (ph, kh - 1 - ph), (pw, kw - 1 - pw), (0, 0)])
    out = np.zeros(x.shape[:3] + (k.shape[-1],))
    for i in range(kh):
        for j in range(kw):
            out += xp[:, i : i + x.shape[1], j : j + x.shape[2], :] @ k[i, j]
    return out


def np_batch_norm(x, mean, var, eps=EPS):
    return (x - mean) / np.sqrt(var + eps)


def assert_config_round_trip(test, layer, *args, **kwargs):
    """Rebuilt from get_config with the same weights, the layer computes the same."""
    clone = layer.__class__.from_config(layer.get_config())
    test.assertEqual(clone.get_config(), layer.get_config())
    clone(*args, **kwargs)
    clone.set_weights(layer.get_weights())
    test.assertAllClose(clone(*args, **kwargs), layer(*args, **kwargs), atol=1e-6)
