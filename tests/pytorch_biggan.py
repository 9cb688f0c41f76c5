"""A miniature BigGAN-PyTorch G and D in raw torch ops, from docs/pytorch_layout.md alone.

Independent of our Keras layers: the state_dicts carry the author's key names, shapes and
buffers (`u0`, `sv0`, `stored_mean`, `stored_var`), and `generate`/`discriminate`
compute the author's eval-mode forward passes (NCHW, spectral norm by one power step
from the stored `u0` with x / max(|x|, 1e-6), BN eps 1e-5, nearest upsampling, sum
pooling, SN projection embedding with u over the classes). Every value is perturbed away
from its identity (statistics, u vectors, attention gamma, BN gains) so that a wrong
import rule shows in the outputs. `write` saves genuine `.pth` files in both of torch's
containers. Needs torch (requirements-test.txt).
"""

import collections
import os

import numpy as np
import torch
import torch.nn.functional as F

SN_EPS = 1e-6
BN_EPS = 1e-5
# The author's G_arch / D_arch (in and out multipliers of ch per block; D downsampling).
G_ARCH = {
    32: ((4, 4, 4), (4, 4, 4)),
    64: ((16, 16, 8, 4), (16, 8, 4, 2)),
    128: ((16, 16, 8, 4, 2), (16, 8, 4, 2, 1)),
    256: ((16, 16, 8, 8, 4, 2), (16, 8, 8, 4, 2, 1)),
}
D_ARCH = {
    32: ((4, 4, 4, 4), (True, True, False, False)),
    64: ((1, 2, 4, 8, 16), (True, True, True, True, False)),
    128: ((1, 2, 4, 8, 16, 16), (True,) * 5 + (False,)),
    256: ((1, 2, 4, 8, 8, 16, 16), (True,) * 6 + (False,)),
}


def _sn_shapes(key, weight_shape, bias=True):
    out = weight_shape[0]
    shapes = [(f"{key}.weight", weight_shape)]
    if bias:
        shapes.append((f"{key}.bias", [out]))
    return shapes + [(f"{key}.u0", [1, out]), (f"{key}.sv0", [1])]


def _attention_shapes(key, c):
    shapes = [(f"{key}.gamma", [])]
    for name, (o, i) in (
        ("theta", (c // 8, c)),
        ("phi", (c // 8, c)),
        ("g", (c // 2, c)),
        ("o", (c, c // 2)),
    ):
        shapes += _sn_shapes(f"{key}.{name}", [o, i, 1, 1], bias=False)
    return shapes


def g_layout(resolution, ch, num_classes, shared_dim, z_chunk, attention_block):
    """`OrderedDict key -> shape` of the author's G.pth (hierarchical z, shared embedding)."""
    ins, outs = G_ARCH[resolution]
    cond = shared_dim + z_chunk
    shapes = [("shared.weight", [num_classes, shared_dim])]
    shapes += _sn_shapes("linear", [16 * ch * ins[0], z_chunk])
    for i, (cin, cout) in enumerate(zip(ins, outs)):
        cin, cout, key = ch * cin, ch * cout, f"blocks.{i}.0"
        shapes += _sn_shapes(f"{key}.conv1", [cout, cin, 3, 3])
        shapes += _sn_shapes(f"{key}.conv2", [cout, cout, 3, 3])
        shapes += _sn_shapes(f"{key}.conv_sc", [cout, cin, 1, 1])
        for bn, c in (("bn1", cin), ("bn2", cout)):
            shapes += [(f"{key}.{bn}.stored_mean", [c]), (f"{key}.{bn}.stored_var", [c])]
            shapes += _sn_shapes(f"{key}.{bn}.gain", [c, cond], bias=False)
            shapes += _sn_shapes(f"{key}.{bn}.bias", [c, cond], bias=False)
        if i == attention_block:
            shapes += _attention_shapes(f"blocks.{i}.1", cout)
    c = ch * outs[-1]
    shapes += [("output_layer.0.gain", [c]), ("output_layer.0.bias", [c])]
    shapes += [("output_layer.0.stored_mean", [c]), ("output_layer.0.stored_var", [c])]
    shapes += _sn_shapes("output_layer.2", [3, c, 3, 3])
    return collections.OrderedDict(shapes)


def d_layout(resolution, ch, num_classes, attention_block):
    """`OrderedDict key -> shape` of the author's D.pth."""
    outs, downs = D_ARCH[resolution]
    shapes, cin = [], 3
    for i, (m, down) in enumerate(zip(outs, downs)):
        cout, key = ch * m, f"blocks.{i}.0"
        shapes += _sn_shapes(f"{key}.conv1", [cout, cin, 3, 3])
        shapes += _sn_shapes(f"{key}.conv2", [cout, cout, 3, 3])
        if cin != cout or down:
            shapes += _sn_shapes(f"{key}.conv_sc", [cout, cin, 1, 1])
        if i == attention_block:
            shapes += _attention_shapes(f"blocks.{i}.1", cout)
        cin = cout
    shapes += _sn_shapes("linear", [1, cin])
    shapes += [("embed.weight", [num_classes, cin]), ("embed.u0", [1, num_classes])]
    shapes += [("embed.sv0", [1])]
    return collections.OrderedDict(shapes)


def parameter_count(layout):
    """Scalars of the parameters (not the buffers u0, sv0, stored_mean/var)."""
    buffers = (".u0", ".sv0", ".stored_mean", ".stored_var")
    return sum(int(np.prod(s)) for k, s in layout.items() if not k.endswith(buffers))


def random_state(layout, seed):
    """Float32 tensors for a layout, each perturbed away from its identity value."""
    rng = np.random.default_rng(seed)
    state = collections.OrderedDict()
    for key, shape in layout.items():
        if key.endswith(".stored_var"):
            value = rng.uniform(0.3, 1.5, shape)
        elif key.endswith(".stored_mean"):
            value = rng.normal(0, 0.3, shape)
        elif key.endswith(".u0"):
            value = rng.normal(0, 1, shape)
        elif key.endswith(".sv0"):
            value = np.full(shape, 123.0)  # logging only: a sigma this wrong must not matter
        elif key.endswith(".gamma"):
            value = np.array(rng.uniform(0.5, 1.0))
        elif key == "output_layer.0.gain":
            value = rng.uniform(0.7, 1.3, shape)
        elif key.endswith(".bias"):
            value = rng.normal(0, 0.1, shape)
        else:
            value = rng.normal(0, 1, shape)
        state[key] = torch.tensor(value, dtype=torch.float32)
    return state


def write(state, path, legacy=False):
    """`torch.save` of a state_dict; `legacy` = the pre-1.6 container."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


# ---- Forward passes (eval mode), float64 ------------------------------------------------


def _unit(x):
    return x / torch.clamp(torch.linalg.norm(x), min=SN_EPS)


def sn_weight(state, key):
    """weight / sigma, sigma from one power step from u0 (W viewed as [out, -1])."""
    w, u = state[f"{key}.weight"], state[f"{key}.u0"]
    m = w.reshape(w.shape[0], -1)
    v = _unit(u @ m)
    u_new = _unit(v @ m.T)
    sigma = (v @ m.T @ u_new.T).squeeze()
    return w / sigma


def _conv(state, key, x, bias=True):
    w = sn_weight(state, key)
    b = state[f"{key}.bias"] if bias else None
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def _attention(state, key, x):
    b, c, h, w = x.shape
    theta = _conv(state, f"{key}.theta", x, False).reshape(b, c // 8, h * w)
    phi = F.max_pool2d(_conv(state, f"{key}.phi", x, False), [2, 2]).reshape(b, c // 8, -1)
    g = F.max_pool2d(_conv(state, f"{key}.g", x, False), [2, 2]).reshape(b, c // 2, -1)
    beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), -1)
    o = torch.bmm(g, beta.transpose(1, 2)).reshape(b, c // 2, h, w)
    return x + state[f"{key}.gamma"] * _conv(state, f"{key}.o", o, False)


def _ccbn(state, key, x, cond):
    gain = 1 + F.linear(cond, sn_weight(state, f"{key}.gain"))
    bias = F.linear(cond, sn_weight(state, f"{key}.bias"))
    mean, var = state[f"{key}.stored_mean"], state[f"{key}.stored_var"]
    out = F.batch_norm(x, mean, var, None, None, False, 0.1, BN_EPS)
    return out * gain[:, :, None, None] + bias[:, :, None, None]


def _double(state):
    return {k: v.double() for k, v in state.items()}


def generate(state, z, y):
    """Images NHWC `[B, R, R, 3]` (numpy) of the author's G in eval mode."""
    s = _double(state)
    z, y = torch.tensor(z, dtype=torch.float64), torch.tensor(y, dtype=torch.long)
    chunk = s["linear.weight"].shape[1]
    zs = torch.split(z, chunk, 1)
    emb = s["shared.weight"][y]
    h = F.linear(zs[0], sn_weight(s, "linear"), s["linear.bias"]).reshape(z.shape[0], -1, 4, 4)
    i = 0
    while f"blocks.{i}.0.conv1.weight" in s:
        key, cond = f"blocks.{i}.0", torch.cat([emb, zs[i + 1]], 1)
        a = F.relu(_ccbn(s, f"{key}.bn1", h, cond))
        a = _conv(s, f"{key}.conv1", F.interpolate(a, scale_factor=2))
        a = _conv(s, f"{key}.conv2", F.relu(_ccbn(s, f"{key}.bn2", a, cond)))
        h = a + _conv(s, f"{key}.conv_sc", F.interpolate(h, scale_factor=2))
        if f"blocks.{i}.1.gamma" in s:
            h = _attention(s, f"blocks.{i}.1", h)
        i += 1
    mean, var = s["output_layer.0.stored_mean"], s["output_layer.0.stored_var"]
    gain, bias = s["output_layer.0.gain"], s["output_layer.0.bias"]
    h = F.relu(F.batch_norm(h, mean, var, gain, bias, False, 0.1, BN_EPS))
    return torch.tanh(_conv(s, "output_layer.2", h)).permute(0, 2, 3, 1).numpy()


def discriminate(state, x, y, downsample):
    """Logits `[B]` (numpy) of the author's D; `x` NHWC in [-1, 1], `downsample` per block."""
    s = _double(state)
    h = torch.tensor(x, dtype=torch.float64).permute(0, 3, 1, 2)
    y = torch.tensor(y, dtype=torch.long)
    for i, down in enumerate(downsample):
        key = f"blocks.{i}.0"
        pool = (lambda t: F.avg_pool2d(t, 2)) if down else (lambda t: t)
        a = F.relu(h) if i > 0 else h
        a = pool(_conv(s, f"{key}.conv2", F.relu(_conv(s, f"{key}.conv1", a))))
        shortcut = h
        if f"{key}.conv_sc.weight" in s:
            if i > 0:
                shortcut = pool(_conv(s, f"{key}.conv_sc", shortcut))
            else:
                shortcut = _conv(s, f"{key}.conv_sc", pool(shortcut))
        else:
            shortcut = pool(shortcut)
        h = a + shortcut
        if f"blocks.{i}.1.gamma" in s:
            h = _attention(s, f"blocks.{i}.1", h)
    f = torch.sum(F.relu(h), [2, 3])
    out = F.linear(f, sn_weight(s, "linear"), s["linear.bias"])[:, 0]
    return (out + torch.sum(sn_weight(s, "embed")[y] * f, 1)).numpy()


def write_weights_dir(directory, num_classes=5, seed=0, legacy=True):
    """A tiny 32-px run's `G.pth`, `G_ema.pth` and `D.pth` (ch 2, no attention, dim_z 8).

    Returns `{stem: state_dict}`.
    """
    g_shapes = g_layout(32, 2, num_classes, shared_dim=4, z_chunk=2, attention_block=None)
    d_shapes = d_layout(32, 2, num_classes, attention_block=None)
    states = {
        "G": random_state(g_shapes, seed),
        "G_ema": random_state(g_shapes, seed + 1),
        "D": random_state(d_shapes, seed + 2),
    }
    for stem, state in states.items():
        write(state, os.path.join(directory, f"{stem}.pth"), legacy=legacy)
    return states
