#!/usr/bin/env python3
"""The dense DATA search iteration in PyTorch: what a user would otherwise run.

A DARTS supernet (every op of every edge computed, full autograd, as in the authors' code)
with EGS-sampled op weights: one architecture step (forward, full backward, Adam on alpha)
plus one weight step (forward, backward, SGD). Prints one JSON line with the median time of
an iteration in ms. Run with Debian's interpreter (/usr/bin/python3, package python3-torch);
`datanas bench --what search-step --pytorch bench/pytorch_search_step.py` calls it with the
same sizes as its own measurement.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, k, stride, pad):
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, k, stride, pad, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


class DilConv(nn.Sequential):
    def __init__(self, c, k, stride, pad, dil):
        super().__init__(nn.ReLU(),
                         nn.Conv2d(c, c, k, stride, pad, dilation=dil, groups=c, bias=False),
                         nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


class SepConv(nn.Sequential):
    def __init__(self, c, k, stride, pad):
        super().__init__(DilConv(c, k, stride, pad, 1), DilConv(c, k, 1, pad, 1))


class FactorizedReduce(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.even = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.odd = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x):
        x = F.relu(x)
        if x.size(2) % 2:
            x = F.pad(x, (0, 1, 0, 1))
        return self.bn(torch.cat([self.even(x), self.odd(x[:, :, 1:, 1:])], 1))


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


def make_op(name, c, stride):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False),
                             nn.BatchNorm2d(c, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    k = int(name[-1])
    if name.startswith("sep"):
        return SepConv(c, k, stride, k // 2)
    return DilConv(c, k, stride, k - 1, 2)


class MixedOp(nn.Module):
    def __init__(self, c, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(n, c, stride) for n in OPS)

    def forward(self, x, weights):
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class Cell(nn.Module):
    def __init__(self, nodes, c_pp, c_p, c, reduction, reduction_prev):
        super().__init__()
        self.nodes = nodes
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.edges = nn.ModuleList(MixedOp(c, 2 if reduction and i < 2 else 1)
                                   for j in range(nodes) for i in range(2 + j))

    def forward(self, s0, s1, weights):
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for j in range(self.nodes):
            total = 0
            for i in range(2 + j):
                total = total + self.edges[e](states[i], weights[e])
                e += 1
            states.append(total)
        return torch.cat(states[-self.nodes:], 1)


class Supernet(nn.Module):
    def __init__(self, c_in, C, layers, classes=10, nodes=4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c_in, 3 * C, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(3 * C))
        c_pp, c_p, c = 3 * C, 3 * C, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            self.cells.append(Cell(nodes, c_pp, c_p, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_pp, c_p = c_p, nodes * c
        self.classifier = nn.Linear(c_p, classes)

    def forward(self, x, w_normal, w_reduce):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))


def egs_weights(alpha, M, tau, nodes=4):
    """Node-granularity EGS: M hard Gumbel-softmax draws per node, straight-through."""
    rows = []
    start = 0
    for j in range(nodes):
        logits = alpha[start:start + 2 + j].reshape(-1)
        soft = F.softmax(logits, 0)
        code = torch.zeros_like(logits)
        for _ in range(M):
            g = -torch.log(-torch.log(torch.rand_like(logits).clamp_min(1e-20)))
            code[torch.argmax((logits.detach() + g) / tau)] = 1.0
        weights = code / code.sum()
        rows.append((weights - soft.detach() + soft).reshape(2 + j, -1))
        start += 2 + j
    return torch.cat(rows, 0)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--C", type=int, default=16)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--M", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net = Supernet(a.channels, a.C, a.layers)
    edges = 14
    alphas = [(1e-3 * torch.randn(edges, len(OPS))).requires_grad_() for _ in range(2)]
    w_opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, 3e-4, betas=(0.5, 0.999))
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    y = torch.randint(0, 10, (a.batch,))

    def iteration():
        a_opt.zero_grad()
        w_opt.zero_grad()
        loss = F.cross_entropy(net(x, *(egs_weights(al, a.M, 5.0) for al in alphas)), y)
        loss.backward()  # the authors' architecture step also computes weight gradients
        a_opt.step()
        w_opt.zero_grad()
        loss = F.cross_entropy(net(x, *(egs_weights(al.detach(), a.M, 5.0) for al in alphas)), y)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        w_opt.step()

    net.train()
    for _ in range(a.warmup):
        iteration()
    times = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        iteration()
        times.append(1e3 * (time.perf_counter() - start))
    print(json.dumps({"pytorch_dense_ms": statistics.median(times), "torch": torch.__version__,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
