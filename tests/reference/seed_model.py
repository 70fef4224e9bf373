"""The seed's PyTorch code (seed/000_818119073713901f.txt), kept as the reference for ilbench.

Holds, copied from the seed with the smallest changes that make them run on the Debian
python3-torch (1.13) without torchvision:

  * TanhFixedPointLayer      fixed-point iteration, autograd unrolls every map
  * TanhNewtonLayer          Newton's method, autograd unrolls every step and linear solve
  * TanhNewtonImplicitLayer  Newton under no_grad + IFT backward hook
  * make_model(layer)        Flatten -> Linear(784,100) -> layer(100) -> Linear(100,10), SGD lr 0.1
  * epoch(...)               the seed's training/eval loop, NaN check included
  * load_mnist(dir)          MNIST from the raw idx files instead of torchvision

Changes from the seed, all intentional and none of them semantic:
  * torch.solve(b, A)[0]  ->  torch.linalg.solve(A, b)   (torch.solve is deprecated/removed)
  * torch.eye(n)          ->  torch.eye(n, dtype=z.dtype, device=z.device)
    (so the Jacobian has the dtype of the iterate; the seed relied on the default dtype,
    which is float32 in training and must be float64 for the fixture/gradcheck)
  * no .to(device) / CUDA: the reference runs on the CPU
  * no tqdm, no torchvision: data comes from load_mnist() below as float tensors, pixels/255
    exactly as transforms.ToTensor() produces them (no normalisation)

Use /usr/bin/python3 (Debian's interpreter, which has python3-torch).
"""
import gzip
import os

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


# --------------------------------------------------------------------------------------------
# The three layers (seed In [2], In [8], In [11]).
# --------------------------------------------------------------------------------------------
class TanhFixedPointLayer(nn.Module):
    def __init__(self, out_features, tol=1e-4, max_iter=50):
        super().__init__()
        self.linear = nn.Linear(out_features, out_features, bias=False)
        self.tol = tol
        self.max_iter = max_iter

    def forward(self, x):
        # initialize output z to be zero
        z = torch.zeros_like(x)
        self.iterations = 0

        # iterate until convergence
        while self.iterations < self.max_iter:
            z_next = torch.tanh(self.linear(z) + x)
            self.err = torch.norm(z - z_next)
            z = z_next
            self.iterations += 1
            if self.err < self.tol:
                break

        return z


class TanhNewtonLayer(nn.Module):
    def __init__(self, out_features, tol=1e-4, max_iter=50):
        super().__init__()
        self.linear = nn.Linear(out_features, out_features, bias=False)
        self.tol = tol
        self.max_iter = max_iter

    def forward(self, x):
        # initialize output z to be zero
        z = torch.tanh(x)
        self.iterations = 0

        # iterate until convergence
        while self.iterations < self.max_iter:
            z_linear = self.linear(z) + x
            g = z - torch.tanh(z_linear)
            self.err = torch.norm(g)
            if self.err < self.tol:
                break

            # newton step
            J = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)[None, :, :] \
                - (1 / torch.cosh(z_linear)**2)[:, :, None] * self.linear.weight[None, :, :]
            z = z - torch.linalg.solve(J, g[:, :, None])[:, :, 0]
            self.iterations += 1

        g = z - torch.tanh(self.linear(z) + x)
        z[torch.norm(g, dim=1) > self.tol, :] = 0
        return z


class TanhNewtonImplicitLayer(nn.Module):
    def __init__(self, out_features, tol=1e-4, max_iter=50):
        super().__init__()
        self.linear = nn.Linear(out_features, out_features, bias=False)
        self.tol = tol
        self.max_iter = max_iter

    def forward(self, x):
        # Run Newton's method outside of the autograd framework
        with torch.no_grad():
            z = torch.tanh(x)
            self.iterations = 0
            while self.iterations < self.max_iter:
                z_linear = self.linear(z) + x
                g = z - torch.tanh(z_linear)
                self.err = torch.norm(g)
                if self.err < self.tol:
                    break

                # newton step
                J = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)[None, :, :] \
                    - (1 / torch.cosh(z_linear)**2)[:, :, None] * self.linear.weight[None, :, :]
                z = z - torch.linalg.solve(J, g[:, :, None])[:, :, 0]
                self.iterations += 1

        # reengage autograd and add the gradient hook
        # (as in the seed, J is the LAST Jacobian formed in the loop, i.e. at the iterate before
        # the final Newton step; if the loop made no step, J is unbound and backward fails,
        # exactly as the seed's code would)
        z = torch.tanh(self.linear(z) + x)
        z.register_hook(lambda grad: torch.linalg.solve(J.transpose(1, 2), grad[:, :, None])[:, :, 0])
        return z


# name used on the ilbench command line ("solver/backward") -> (layer class, seed's max_iter)
LAYERS = {
    "fp/unroll": (TanhFixedPointLayer, 200),
    "newton/unroll": (TanhNewtonLayer, 40),
    "newton/implicit": (TanhNewtonImplicitLayer, 40),
}


# --------------------------------------------------------------------------------------------
# Model and training loop (seed In [5], In [6], In [10], In [13]).
# --------------------------------------------------------------------------------------------
def make_model(layer_name, seed=0, hidden=100, tol=1e-4):
    """The seed's model for layer_name in LAYERS; returns (model, opt)."""
    cls, max_iter = LAYERS[layer_name]
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(),
                          nn.Linear(784, hidden),
                          cls(hidden, tol=tol, max_iter=max_iter),
                          nn.Linear(hidden, 10))
    opt = optim.SGD(model.parameters(), lr=1e-1)
    return model, opt


def train_step(model, opt, X, y):
    """One iteration of the body of the seed's epoch() with opt given. Returns (loss, n_err, nan)."""
    yp = model(X)
    loss = nn.CrossEntropyLoss()(yp, y)
    opt.zero_grad()
    loss.backward()
    nan = not (sum(torch.sum(torch.isnan(p.grad)) for p in model.parameters()) == 0)
    if not nan:
        opt.step()
    return loss.item(), (yp.max(dim=1)[1] != y).sum().item(), nan


def epoch(loader, model, opt=None, monitor=None):
    """The seed's generic epoch function (without tqdm and .to(device))."""
    total_loss, total_err, total_monitor = 0., 0., 0.
    model.eval() if opt is None else model.train()
    for X, y in loader:
        yp = model(X)
        loss = nn.CrossEntropyLoss()(yp, y)
        if opt:
            opt.zero_grad()
            loss.backward()
            if sum(torch.sum(torch.isnan(p.grad)) for p in model.parameters()) == 0:
                opt.step()

        total_err += (yp.max(dim=1)[1] != y).sum().item()
        total_loss += loss.item() * X.shape[0]
        if monitor is not None:
            total_monitor += monitor(model)
    return total_err / len(loader.dataset), total_loss / len(loader.dataset), total_monitor / len(loader)


# --------------------------------------------------------------------------------------------
# MNIST from raw idx files (what scripts/fetch-mnist puts in data/mnist/).
# --------------------------------------------------------------------------------------------
def _read_idx(path_base, expect_magic, expect_rank):
    """Read "<path_base>" or "<path_base>.gz" (gzip detected by magic bytes, like bench/mnist_idx.c)."""
    for path in (path_base, path_base + ".gz"):
        if os.path.exists(path):
            break
    else:
        raise FileNotFoundError(f"neither {path_base} nor {path_base}.gz exists "
                                "(run scripts/fetch-mnist)")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[0:4], "big")
    if magic != expect_magic:
        raise ValueError(f"{path}: bad idx magic 0x{magic:08x}, expected 0x{expect_magic:08x}")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(expect_rank)]
    off = 4 + 4 * expect_rank
    count = int(np.prod(dims))
    if len(raw) - off != count:
        raise ValueError(f"{path}: {len(raw) - off} data bytes, header says {count}")
    return np.frombuffer(raw, dtype=np.uint8, offset=off).reshape(dims)


def load_mnist(data_dir, split="train"):
    """Return (X, y): X float32 (N,1,28,28) in [0,1] (pixels/255, as ToTensor), y int64 (N,)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"), 0x00000803, 3)
    labels = _read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"), 0x00000801, 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{data_dir}: {images.shape[0]} {prefix} images but {labels.shape[0]} labels")
    if labels.max() > 9:
        raise ValueError(f"{data_dir}: label {labels.max()} > 9")
    X = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(labels.astype(np.int64))
    return X, y


def mnist_loader(data_dir, split="train", batch_size=100, shuffle=True, seed=0):
    """A DataLoader like the seed's, over load_mnist(); shuffle order from a Generator seeded by seed."""
    from torch.utils.data import DataLoader, TensorDataset
    X, y = load_mnist(data_dir, split)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=shuffle,
                      generator=gen if shuffle else None)
