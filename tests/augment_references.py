"""Independent NumPy versions of DiffAugment's ops (loops over images, explicit windows),
shared by tests/limited_data_test.py and tests/train_step_test.py."""

import numpy as np

from tf_cgan_transfer import limited_data


def np_color(x, brightness, saturation, contrast):
    out = np.empty_like(x)
    for b in range(len(x)):
        img = x[b] + brightness[b]
        pixel_mean = img.mean(axis=2, keepdims=True)
        img = pixel_mean + (img - pixel_mean) * saturation[b]
        img = img.mean() + (img - img.mean()) * contrast[b]
        out[b] = img
    return out


def np_translate(x, shifts):
    out = np.zeros_like(x)
    height, width = x.shape[1:3]
    for b, (dy, dx) in enumerate(shifts):
        # Destination rows [max(dy, 0), height + min(dy, 0)) come from rows shifted by -dy.
        dst_y = slice(max(dy, 0), height + min(dy, 0))
        src_y = slice(max(-dy, 0), height + min(-dy, 0))
        dst_x = slice(max(dx, 0), width + min(dx, 0))
        src_x = slice(max(-dx, 0), width + min(-dx, 0))
        out[b, dst_y, dst_x] = x[b, src_y, src_x]
    return out


def np_cutout(x, centres, size):
    out = x.copy()
    height, width = x.shape[1:3]
    for b, (cy, cx) in enumerate(centres):
        top, left = cy - size // 2, cx - size // 2
        out[b, max(top, 0) : min(top + size, height), max(left, 0) : min(left + size, width)] = 0
    return out


def np_apply(x, params, policy):
    for op in policy:
        if op == "color":
            x = np_color(x, params["brightness"], params["saturation"], params["contrast"])
        elif op == "translation":
            x = np_translate(x, params["translation"])
        else:
            x = np_cutout(x, params["cutout"], limited_data.cutout_size(x.shape[1]))
    return x
